/**
 * The time limit of tries: one timer for all of them, rather than one per try, which a fast
 * worker would pay for on every task.
 *
 * @module
 */

/** A clock, so that tests can drive time by hand. */
export interface Clock {
  /** Milliseconds from some fixed point, never going back. */
  now(): number;
  /** Calls `fn` every `ms`; returns what {@linkcode Clock.clearInterval} takes. */
  setInterval(fn: () => void, ms: number): unknown;
  /** Stops what {@linkcode Clock.setInterval} started. */
  clearInterval(timer: unknown): void;
  /** Calls `fn` once after `ms`; returns what {@linkcode Clock.clearTimeout} takes. */
  setTimeout(fn: () => void, ms: number): unknown;
  /** Stops what {@linkcode Clock.setTimeout} started. */
  clearTimeout(timer: unknown): void;
}

/** The real clock. */
export const SYSTEM_CLOCK: Clock = {
  now: () => performance.now(),
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (timer) => clearInterval(timer as ReturnType<typeof setInterval>),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (timer) => clearTimeout(timer as ReturnType<typeof setTimeout>),
};

/** Options for {@linkcode Deadlines}. */
export interface DeadlinesOptions {
  /**
   * The clock that times the tries.
   * @default {SYSTEM_CLOCK}
   */
  clock?: Clock;
}

/**
 * Stops tries that run past their limit. A try is stopped within a tenth of the limit (at most
 * 1 s, at least 10 ms) after it ran out: its abort signal fires with `timeout after <ms> ms`.
 */
export class Deadlines {
  #timeout: number;
  #clock: Clock;
  #running = new Map<AbortController, number>();
  #timer: unknown;

  /** Tries may run `timeout` ms; 0 for no limit. */
  constructor(timeout: number, options: DeadlinesOptions = {}) {
    this.#timeout = timeout;
    this.#clock = options.clock ?? SYSTEM_CLOCK;
    if (timeout > 0) {
      this.#timer = this.#clock.setInterval(
        () => this.#sweep(),
        Math.min(1000, Math.max(10, timeout / 10)),
      );
    }
  }

  /** A try starts: its abort signal fires when it runs out of time. */
  start(): AbortController {
    const controller = new AbortController();
    if (this.#timer !== undefined) this.#running.set(controller, this.#clock.now());
    return controller;
  }

  /** A try ended. */
  finish(controller: AbortController): void {
    this.#running.delete(controller);
  }

  /** Stops the timer. */
  close(): void {
    if (this.#timer !== undefined) this.#clock.clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #sweep(): void {
    const now = this.#clock.now();
    // In start order, and all with the same limit: the first that has time left ends the sweep.
    for (const [controller, started] of this.#running) {
      if (now - started < this.#timeout) break;
      this.#running.delete(controller);
      controller.abort(new Error(`timeout after ${this.#timeout} ms`));
    }
  }
}
