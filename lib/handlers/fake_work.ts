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
  // indexOf rather than a loop over every byte: it is on a worker's path for every task.
  let dots = 0;
  if (typeof body === "string") {
    for (let at = body.indexOf("."); at !== -1; at = body.indexOf(".", at + 1)) dots++;
  } else {
    for (let at = body.indexOf(0x2e); at !== -1; at = body.indexOf(0x2e, at + 1)) dots++;
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

/**
 * Sleeps for {@linkcode workDuration} of `body`. A body without dots is no work: it returns
 * undefined at once, not a promise, so that a worker finishes the task in the same turn.
 */
export function fakeWork(
  body: string | Uint8Array,
  options: FakeWorkOptions = {},
): Promise<void> | undefined {
  const { dotMs = 1000, signal } = options;
  const ms = workDuration(body, dotMs);
  return ms > 0 ? sleep(ms, undefined, signal ? { signal } : {}) : undefined;
}
