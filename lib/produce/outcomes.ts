/**
 * Waiting for outcomes: a producer's promises for the tasks whose outcome it waits for, settled
 * by the replies workers send to its direct reply-to address.
 *
 * @module
 */

import type { ConsumeMessage } from "../amqp.ts";
import { AmqpError } from "../broker/errors.ts";
import { decodeOutcome, type Outcome } from "../consume/outcome.ts";

/**
 * No outcome came within the wait's time limit. The task itself was sent and confirmed: it stays
 * in the queue and will still run.
 *
 * @example Tell a timeout from a failure
 * ```ts
 * import { OutcomeTimeoutError } from "@workqueue/rabbitmq";
 *
 * const error: unknown = new OutcomeTimeoutError("2f6c", 5000);
 * if (error instanceof OutcomeTimeoutError) console.log(`still running: ${error.taskId}`);
 * ```
 */
export class OutcomeTimeoutError extends Error {
  /** The task that is still running (or waiting). */
  readonly taskId: string;

  /** For task `taskId`, after `timeout` ms. */
  constructor(taskId: string, timeout: number) {
    super(
      `No outcome for task ${taskId} within ${timeout} ms; the task was sent and will still run`,
    );
    this.name = "OutcomeTimeoutError";
    this.taskId = taskId;
  }
}

/**
 * How long to wait for an outcome.
 *
 * @example Wait at most a minute
 * ```ts
 * import type { WaitOptions } from "@workqueue/rabbitmq";
 *
 * const wait: WaitOptions = { timeout: 60_000, signal: AbortSignal.timeout(120_000) };
 * console.log(wait.timeout);
 * ```
 */
export interface WaitOptions {
  /**
   * Milliseconds to wait for the outcome; 0 for no limit.
   * @default {0}
   */
  timeout?: number;
  /**
   * Stops waiting (the task still runs).
   * @default {undefined}
   */
  signal?: AbortSignal;
}

interface Waiter {
  resolve(outcome: Outcome): void;
  reject(error: unknown): void;
}

/** The outcomes one producer channel waits for. */
export class Outcomes {
  #waiting = new Map<string, Waiter>();
  // Outcomes that came before anyone waited for them (a fast worker, a slow caller).
  #early = new Map<string, Outcome>();
  #closed: unknown;

  /** Handles one reply message; replies that are not outcomes of ours are ignored. */
  receive = (message: ConsumeMessage): void => {
    let outcome: Outcome;
    try {
      outcome = decodeOutcome(message.content);
    } catch {
      return;
    }
    const id = message.properties.correlationId ?? outcome.id;
    const waiter = this.#waiting.get(id);
    if (waiter) {
      this.#waiting.delete(id);
      waiter.resolve(outcome);
    } else this.#early.set(id, outcome);
  };

  /**
   * Resolves with the outcome of task `id` (sent with this channel's reply-to address).
   *
   * @throws {OutcomeTimeoutError} when `timeout` passes first.
   * @throws {AmqpError} when the channel closed first: the outcome can no longer arrive.
   */
  wait(id: string, options: WaitOptions = {}): Promise<Outcome> {
    const { timeout = 0, signal } = options;
    const early = this.#early.get(id);
    if (early) {
      this.#early.delete(id);
      return Promise.resolve(early);
    }
    if (this.#closed !== undefined) return Promise.reject(this.#lost(id));
    signal?.throwIfAborted();
    return new Promise<Outcome>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        this.#waiting.delete(id);
      };
      const onAbort = () => {
        done();
        reject(signal?.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      if (timeout > 0) {
        timer = setTimeout(() => {
          done();
          reject(new OutcomeTimeoutError(id, timeout));
        }, timeout);
      }
      this.#waiting.set(id, {
        resolve: (outcome) => {
          done();
          resolve(outcome);
        },
        reject: (error) => {
          done();
          reject(error);
        },
      });
    });
  }

  /** The channel closed: every wait fails, since no outcome can reach it any more. */
  close(reason: unknown = "the channel closed"): void {
    this.#closed = reason;
    for (const [id, waiter] of [...this.#waiting]) waiter.reject(this.#lost(id));
    this.#waiting.clear();
  }

  #lost(id: string): AmqpError {
    return new AmqpError(
      `Lost the connection while waiting for the outcome of task ${id}; the task was sent and will still run`,
    );
  }
}
