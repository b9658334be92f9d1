/**
 * The time limit of tries: one timer for all of them, rather than one per try, which a fast
 * worker would pay for on every task. The clock is read once when a try starts and once when it
 * ends, which also gives the try's duration.
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
 * One try under the time limit, from {@linkcode Deadlines.start}. Its timeout neither needs nor
 * adds a listener on its signal: a fast worker would pay for one on every task.
 */
export class Try {
  /** When the try started, on the clock of its {@linkcode Deadlines}. */
  readonly startedAt: number;
  #controller = new AbortController();
  #expire: ((reason: unknown) => void) | undefined;

  /** Starts a try at `startedAt`; {@linkcode Deadlines.start} makes them. */
  constructor(startedAt: number) {
    this.startedAt = startedAt;
  }

  /** Aborts with `timeout after <ms> ms` once the try has run out of time. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /**
   * Settles as `work` does, or rejects with the signal's reason once the try runs out of time,
   * whichever comes first: a handler that ignores its signal still loses its try.
   */
  race<T>(work: PromiseLike<T>): Promise<T> {
    if (this.signal.aborted) return Promise.reject(this.signal.reason);
    return new Promise<T>((resolve, reject) => {
      this.#expire = reject;
      work.then(resolve, reject);
    });
  }

  /** Ends the try: its signal aborts, and its race rejects, with `reason`. */
  expire(reason: Error): void {
    this.#controller.abort(reason);
    this.#expire?.(reason);
  }
}

/**
 * Stops tries that run past their limit. A try is stopped within a tenth of the limit (at most
 * 1 s, at least 10 ms) after it ran out: its abort signal fires with `timeout after <ms> ms`.
 */
export class Deadlines {
  #timeout: number;
  #clock: Clock;
  #running = new Set<Try>();
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

  /** A try starts: its signal aborts, and its race rejects, when it runs out of time. */
  start(): Try {
    const run = new Try(this.#clock.now());
    if (this.#timer !== undefined) this.#running.add(run);
    return run;
  }

  /** A try ended; returns how long it ran, in milliseconds. */
  finish(run: Try): number {
    this.#running.delete(run);
    return this.#clock.now() - run.startedAt;
  }

  /** Stops the timer. */
  close(): void {
    if (this.#timer !== undefined) this.#clock.clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #sweep(): void {
    const now = this.#clock.now();
    // In start order, and all with the same limit: the first that has time left ends the sweep.
    for (const run of this.#running) {
      if (now - run.startedAt < this.#timeout) break;
      this.#running.delete(run);
      run.expire(new Error(`timeout after ${this.#timeout} ms`));
    }
  }
}
