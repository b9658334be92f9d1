/**
 * Tasks for the measurements: their bodies, and queues filled with them by the plain bulk sender.
 *
 * @module
 */

import type { Deadline } from "./_deadline.ts";
import { runScript } from "./_process.ts";

/**
 * `count` task bodies, one a line: `<prefix>-0`, `<prefix>-1`, ... They have no dots, so the
 * worker's pretend work takes no time: each is a no-op task.
 */
export function taskLines(count: number, prefix = "task"): Uint8Array {
  const lines = Array.from({ length: count }, (_, i) => `${prefix}-${i}\n`);
  return new TextEncoder().encode(lines.join(""));
}

/** Options for {@linkcode fillQueue}. */
export interface FillOptions {
  /** The broker. */
  url: string;
  /** When to give up. */
  deadline: Deadline;
}

/** Puts `count` no-op tasks into `queue` with `bench/baseline_send.ts`; resolves once confirmed. */
export async function fillQueue(queue: string, count: number, options: FillOptions): Promise<void> {
  await runScript("bench/baseline_send.ts", [queue], { ...options, stdin: taskLines(count) });
}
