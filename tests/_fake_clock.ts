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
  once: boolean;
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
    this.#intervals.set(id, { fn, ms, next: this.#now + ms, once: false });
    return id;
  }

  clearInterval(timer: unknown): void {
    this.#intervals.delete(timer as number);
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.#lastId;
    this.#intervals.set(id, { fn, ms, next: this.#now + ms, once: true });
    return id;
  }

  clearTimeout(timer: unknown): void {
    this.#intervals.delete(timer as number);
  }

  /** The periods of the intervals running now, in the order they were set. */
  get intervals(): number[] {
    return [...this.#intervals.values()].filter((i) => !i.once).map((interval) => interval.ms);
  }

  /** The delays of the one-shot timers waiting now, in the order they were set. */
  get timeouts(): number[] {
    return [...this.#intervals.values()].filter((i) => i.once).map((interval) => interval.ms);
  }

  /** Moves time on by `ms`, running each timer at every time it falls due on the way. */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      let due: [number, Interval] | undefined;
      for (const entry of this.#intervals) {
        if (entry[1].next <= end && (due === undefined || entry[1].next < due[1].next)) {
          due = entry;
        }
      }
      if (due === undefined) break;
      const [id, timer] = due;
      this.#now = timer.next;
      if (timer.once) this.#intervals.delete(id);
      else timer.next += timer.ms;
      timer.fn();
    }
    this.#now = end;
  }
}
