/**
 * The tutorial's pretend work: one unit of time per dot in the task body.
 *
 * @module
 */

import { setTimeout as sleep } from "node:timers/promises";

/** How long the fake work for `body` takes: `dotMs` milliseconds per `.`. */
export function workDuration(body: string | Uint8Array, dotMs: number): number {
  if (!Number.isFinite(dotMs) || dotMs < 0) {
    throw new RangeError(`Invalid time per dot "${dotMs}": expected milliseconds, 0 or more`);
  }
  let dots = 0;
  if (typeof body === "string") {
    for (const char of body) if (char === ".") dots++;
  } else {
    for (const byte of body) if (byte === 0x2e) dots++;
  }
  return dots * dotMs;
}

/** Options for {@linkcode fakeWork}. */
export interface FakeWorkOptions {
  /**
   * Milliseconds of work per dot.
   * @default {1000}
   */
  dotMs?: number;
  /**
   * Cuts the work short.
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/** Sleeps for {@linkcode workDuration} of `body`. */
export async function fakeWork(
  body: string | Uint8Array,
  options: FakeWorkOptions = {},
): Promise<void> {
  const { dotMs = 1000, signal } = options;
  const ms = workDuration(body, dotMs);
  if (ms > 0) await sleep(ms, undefined, signal ? { signal } : {});
}
