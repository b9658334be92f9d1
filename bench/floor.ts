#!/usr/bin/env -S deno run --no-prompt
/**
 * The floor under every one-shot send: a Deno process that does nothing (`empty`), one that
 * loads Node's `net` module (`net`), and one that loads amqplib (`amqplib`), then exits. No
 * program that sends a task with amqplib can start faster than the last.
 *
 * ```sh
 * ./bench/floor.ts empty|net|amqplib
 * ```
 *
 * @module
 */

/** Loads what `args` names; resolves with the exit code. */
export async function main(args: string[]): Promise<number> {
  const [what] = args;
  if (args.length !== 1 || !["empty", "net", "amqplib"].includes(what!)) {
    console.error("Usage: floor.ts empty|net|amqplib");
    return 2;
  }
  if (what === "net") await import("node:net");
  if (what === "amqplib") await import("amqplib");
  return 0;
}

if (import.meta.main) Deno.exitCode = await main(Deno.args);
