/**
 * A clock driven by hand, for unit tests of the timer logic: time moves only in
 * {@linkcode FakeClock.advance}, which runs the intervals that fall due on the way, in order.
 *
 * @module
 */

import type { Clock } from "../lib/consume/deadlines.ts";

interface Interval {
  fn: () => void;
  ms: number;
  next: number;
}

/** A {@linkcode Clock} whose time is set by the test. */
export class FakeClock implements Clock {
  #now = 0;
  #lastId = 0;
  #intervals = new Map<number, Interval>();

  now(): number {
    return this.#now;
  }

  setInterval(fn: () => void, ms: number): unknown {
    const id = ++this.#lastId;
    this.#intervals.set(id, { fn, ms, next: this.#now + ms });
    return id;
  }

  clearInterval(timer: unknown): void {
    this.#intervals.delete(timer as number);
  }

  /** The periods of the intervals running now, in the order they were set. */
  get intervals(): number[] {
    return [...this.#intervals.values()].map((interval) => interval.ms);
  }

  /** Moves time on by `ms`, running each interval at every time it falls due on the way. */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      let due: Interval | undefined;
      for (const interval of this.#intervals.values()) {
        if (interval.next <= end && (due === undefined || interval.next < due.next)) {
          due = interval;
        }
      }
      if (due === undefined) break;
      this.#now = due.next;
      due.next += due.ms;
      due.fn();
    }
    this.#now = end;
  }
}
