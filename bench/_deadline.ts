/**
 * Deadlines: every wait in the bench has one, so that a run always ends, with a row that says
 * what timed out rather than a hang.
 *
 * @module
 */

/** A wait that outlived its deadline. */
export class TimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TimeoutError";
  }
}

/** A moment after which a step gives up. */
export class Deadline {
  /** When it passes, on the `performance.now()` clock. */
  readonly at: number;

  #signal: AbortSignal | undefined;

  /** A deadline `ms` milliseconds from now; aborting `signal` ends every wait on it at once. */
  constructor(ms: number, signal?: AbortSignal) {
    if (!(ms > 0)) throw new RangeError(`Invalid deadline "${ms}": expected milliseconds > 0`);
    this.at = performance.now() + ms;
    this.#signal = signal;
  }

  /** Milliseconds left, 0 once it has passed. */
  get remaining(): number {
    return Math.max(0, this.at - performance.now());
  }

  /**
   * Resolves as `promise` does, unless the deadline passes or the signal aborts first.
   *
   * @throws {TimeoutError} naming `what` when the deadline passes first.
   * @throws the signal's reason when it aborts first.
   */
  async race<T>(promise: Promise<T>, what: string): Promise<T> {
    this.#signal?.throwIfAborted();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let onAbort: (() => void) | undefined;
    const ended = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new TimeoutError(`Timed out waiting for ${what}`)),
        this.remaining,
      );
      onAbort = () => reject(this.#signal?.reason);
      this.#signal?.addEventListener("abort", onAbort, { once: true });
    });
    try {
      return await Promise.race([promise, ended]);
    } finally {
      clearTimeout(timer);
      if (onAbort) this.#signal?.removeEventListener("abort", onAbort);
    }
  }

  /** Waits `ms` milliseconds, or less if the deadline passes or the signal aborts first. */
  async sleep(ms: number): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<void>();
    const timer = setTimeout(resolve, Math.min(ms, this.remaining));
    try {
      await this.race(promise, "a pause");
    } finally {
      clearTimeout(timer);
    }
  }
}
