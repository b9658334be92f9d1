/**
 * Counting a process's output lines as they arrive, and waiting for a count.
 *
 * @module
 */

import type { Deadline } from "./_deadline.ts";

/** A running count of some kind of line, with the time of the latest. */
export class LineCount {
  /** Lines counted so far. */
  count = 0;
  #waiters: Array<{ count: number; resolve: (at: number) => void }> = [];

  /** Counts one line, read at `at` (`performance.now()`). */
  add(at: number): void {
    this.count++;
    this.#waiters = this.#waiters.filter((waiter) => {
      if (waiter.count > this.count) return true;
      waiter.resolve(at);
      return false;
    });
  }

  /**
   * Resolves with the time the `count`th line was read.
   *
   * @throws {TimeoutError} when `deadline` passes first.
   */
  reached(count: number, deadline: Deadline, what: string): Promise<number> {
    if (this.count >= count) return Promise.resolve(performance.now());
    const { promise, resolve } = Promise.withResolvers<number>();
    this.#waiters.push({ count, resolve });
    return deadline.race(promise, `${what} (${this.count} of ${count} so far)`);
  }
}
