#!/usr/bin/env -S deno run --allow-read=README.md --allow-write=README.md
/**
 * Rewrites the flag tables in README.md from the scripts' own flag definitions, so that the
 * README and `--help` never disagree.
 *
 * ```sh
 * deno task readme
 * ```
 *
 * A table sits between `<!-- flags:NAME -->` and `<!-- /flags:NAME -->`, NAME being a script.
 *
 * @module
 */

import { type CommandSpec, formatFlagTable } from "../lib/cli/flags.ts";
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

/** `readme` with every flag table brought up to date. */
export function renderReadme(readme: string): string {
  let text = readme;
  for (const [name, command] of Object.entries(DOCUMENTED_COMMANDS)) {
    const open = `<!-- flags:${name} -->`;
    const close = `<!-- /flags:${name} -->`;
    const start = text.indexOf(open);
    const end = text.indexOf(close);
    if (start < 0 || end < start) throw new Error(`README.md has no ${open} ... ${close} block`);
    text = `${text.slice(0, start + open.length)}\n${formatFlagTable(command.flags)}\n${
      text.slice(end)
    }`;
  }
  return text;
}

/** Rewrites README.md in place. */
export async function main(_args: string[]): Promise<number> {
  const path = new URL("../README.md", import.meta.url);
  const before = await Deno.readTextFile(path);
  const after = renderReadme(before);
  if (after !== before) await Deno.writeTextFile(path, after);
  console.log(after === before ? "README.md is up to date" : "README.md flag tables rewritten");
  return 0;
}

if (import.meta.main) Deno.exitCode = await main(Deno.args);
