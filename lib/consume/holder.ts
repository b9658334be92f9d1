/**
 * Tasks that could be moved nowhere (not to the delay levels, not to the dead queue: too large for
 * the broker's current limit, say). Each is held unacked, so it is never lost, out of the way of
 * the others: it frees its concurrency slot and widens the channel's prefetch by one, so that other
 * tasks keep flowing. Parking is tried again with a growing delay; on a graceful stop the held
 * tasks go back to the queue.
 *
 * @module
 */

import type { Clock } from "./deadlines.ts";
import { SYSTEM_CLOCK } from "./deadlines.ts";

/** Options for {@linkcode Holder}. */
export interface HolderOptions {
  /**
   * Called with how many tasks are held, each time that changes, to widen the prefetch by it.
   * @default {() => {}}
   */
  onCount?: (held: number) => void;
  /**
   * The first wait before parking is tried again, in milliseconds; doubled after each failure.
   * @default {1000}
   */
  firstDelay?: number;
  /**
   * The longest wait, in milliseconds.
   * @default {600000}
   */
  maxDelay?: number;
  /**
   * Timers for the waits.
   * @default {SYSTEM_CLOCK}
   */
  clock?: Pick<Clock, "setTimeout" | "clearTimeout">;
}

/** One held task: how to try parking it again, and how to hand it back. */
export interface HeldTask {
  /** Tries to park it; resolves when it was parked (and acked), rejects when it still cannot be. */
  park(): Promise<void>;
  /** Gives it back to the broker (on a stop); nothing else will be done with it. */
  release(): void;
  /** Called after each failed try, with the error and the wait before the next. */
  onStillHeld(error: unknown, nextDelay: number): void;
}

/** The tasks of one channel that are held. */
export class Holder {
  #held = new Map<HeldTask, unknown>();
  #onCount: (held: number) => void;
  #firstDelay: number;
  #maxDelay: number;
  #clock: Pick<Clock, "setTimeout" | "clearTimeout">;
  #closed = false;

  /** Holds tasks of one channel. */
  constructor(options: HolderOptions = {}) {
    this.#onCount = options.onCount ?? (() => {});
    this.#firstDelay = options.firstDelay ?? 1000;
    this.#maxDelay = options.maxDelay ?? 600_000;
    this.#clock = options.clock ?? SYSTEM_CLOCK;
  }

  /** How many tasks are held. */
  get size(): number {
    return this.#held.size;
  }

  /** Holds `task` and tries to park it after the first delay, then after longer ones. */
  hold(task: HeldTask): void {
    if (this.#closed) return task.release();
    const attempt = (delay: number) => {
      this.#held.set(
        task,
        this.#clock.setTimeout(() => {
          task.park().then(() => this.#drop(task), (error) => {
            if (!this.#held.has(task)) return;
            const next = Math.min(this.#maxDelay, delay * 2);
            task.onStillHeld(error, next);
            attempt(next);
          });
        }, delay),
      );
    };
    attempt(this.#firstDelay);
    this.#onCount(this.#held.size);
  }

  /** Gives every held task back to the broker (a graceful stop); later holds release at once. */
  releaseAll(): void {
    this.#closed = true;
    for (const [task, timer] of this.#held) {
      this.#clock.clearTimeout(timer);
      task.release();
    }
    this.#held.clear();
  }

  /** Forgets every held task without a word to the broker: its channel is gone, so are they. */
  forget(): void {
    this.#closed = true;
    for (const timer of this.#held.values()) this.#clock.clearTimeout(timer);
    this.#held.clear();
  }

  #drop(task: HeldTask): void {
    if (!this.#held.delete(task)) return;
    this.#onCount(this.#held.size);
  }
}
