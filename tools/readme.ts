#!/usr/bin/env -S deno run --allow-read=README.md,examples --allow-write=README.md
/**
 * Rewrites the flag tables in README.md from the scripts' own flag definitions, so that the
 * README and `--help` never disagree, and the example programs it quotes from their files, so
 * that the code it shows is the code that runs.
 *
 * ```sh
 * deno task readme
 * ```
 *
 * A table sits between `<!-- flags:NAME -->` and `<!-- /flags:NAME -->`, NAME being a script; a
 * quoted file between `<!-- code:PATH -->` and `<!-- /code:PATH -->`.
 *
 * @module
 */

import type { CommandSpec } from "../lib/cli/flags.ts";
import { formatFlagTable } from "../lib/cli/help.ts";
import { NEW_TASK_COMMAND } from "../new_task.ts";
import { DEAD_COMMAND, PURGE_COMMAND, REQUEUE_COMMAND, STATS_COMMAND } from "../queue.ts";
import { WORKER_COMMAND } from "../worker.ts";

/** The scripts whose flags the README documents, by marker name. */
export const DOCUMENTED_COMMANDS: Record<string, CommandSpec> = {
  new_task: NEW_TASK_COMMAND,
  worker: WORKER_COMMAND,
  queue_stats: STATS_COMMAND,
  queue_dead: DEAD_COMMAND,
  queue_requeue: REQUEUE_COMMAND,
  queue_purge: PURGE_COMMAND,
};

/** The files the README quotes whole, by path from the repository's root. */
export const QUOTED_FILES = ["examples/producer.ts", "examples/worker.ts", "examples/handler.ts"];

/** What the README shows of a file: all of it but the shebang line and the module doc comment. */
export function quotedCode(source: string): string {
  return source.replace(/^#!.*\n/, "").replace(/^\/\*\*[\s\S]*?\*\/\n\n/, "");
}

/** Reads a file of the repository, by path from its root. */
function readRepoFile(path: string): string {
  return Deno.readTextFileSync(new URL(`../${path}`, import.meta.url));
}

/** `readme` with every flag table and quoted file brought up to date. */
export function renderReadme(
  readme: string,
  read: (path: string) => string = readRepoFile,
): string {
  let text = readme;
  for (const [name, command] of Object.entries(DOCUMENTED_COMMANDS)) {
    text = replaceBlock(text, `flags:${name}`, formatFlagTable(command.flags));
  }
  for (const path of QUOTED_FILES) {
    text = replaceBlock(text, `code:${path}`, `\`\`\`ts\n${quotedCode(read(path))}\`\`\``);
  }
  return text;
}

function replaceBlock(text: string, marker: string, content: string): string {
  const open = `<!-- ${marker} -->`;
  const close = `<!-- /${marker} -->`;
  const start = text.indexOf(open);
  const end = text.indexOf(close);
  if (start < 0 || end < start) throw new Error(`README.md has no ${open} ... ${close} block`);
  // Blank lines around the content, as deno fmt leaves them.
  return `${text.slice(0, start + open.length)}\n\n${content}\n\n${text.slice(end)}`;
}

/** Rewrites README.md in place. */
export async function main(_args: string[]): Promise<number> {
  const path = new URL("../README.md", import.meta.url);
  const before = await Deno.readTextFile(path);
  const after = renderReadme(before);
  if (after !== before) await Deno.writeTextFile(path, after);
  console.log(
    after === before
      ? "README.md is up to date"
      : "README.md flag tables and quoted files rewritten",
  );
  return 0;
}

if (import.meta.main) Deno.exitCode = await main(Deno.args);
