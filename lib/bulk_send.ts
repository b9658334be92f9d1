/**
 * Many tasks on one connection: publishes pipelined with a bounded window of unconfirmed tasks,
 * waiting on the channel's backpressure, and an account of exactly what was confirmed.
 *
 * @module
 */

import type { TaskPublisher } from "./publisher.ts";

/** Options for {@linkcode sendAll}. */
export interface SendAllOptions {
  /**
   * The most tasks published but not yet confirmed at any time.
   * @default {1000}
   */
  window?: number;
  /**
   * How long one task may wait for its confirm, in milliseconds.
   * @default {30000}
   */
  confirmTimeout?: number;
  /**
   * Called after each confirm with the counts so far (keep it cheap).
   * @default {() => {}}
   */
  onConfirmed?: (confirmed: number, published: number) => void;
  /**
   * Stops taking new tasks; those in flight are still waited for.
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/** What {@linkcode sendAll} did. */
export interface SendAllResult {
  /** Tasks published. */
  published: number;
  /** Tasks the broker confirmed. */
  confirmed: number;
  /**
   * The first `confirmedPrefix` tasks were all confirmed: after a failure, re-send from the next.
   */
  confirmedPrefix: number;
  /** The first failure, if any; sending stopped there. */
  error?: unknown;
}

/**
 * Publishes every body from `bodies` and waits for every confirm. Stops taking bodies at the
 * first failure and reports how far it got; it never throws for a failed task.
 */
export async function sendAll(
  publisher: TaskPublisher,
  bodies: AsyncIterable<string | Uint8Array> | Iterable<string | Uint8Array>,
  options: SendAllOptions = {},
): Promise<SendAllResult> {
  const { window = 1000, confirmTimeout = 30_000, onConfirmed = () => {}, signal } = options;
  if (!Number.isInteger(window) || window < 1) {
    throw new RangeError(`Invalid window "${window}": expected a whole number of at least 1`);
  }
  let published = 0;
  let confirmed = 0;
  let inFlight = 0;
  let firstFailed = Infinity;
  let error: unknown;
  let roomWaiter: (() => void) | undefined;
  let allSettled: (() => void) | undefined;

  const settled = () => {
    inFlight--;
    const wake = roomWaiter;
    roomWaiter = undefined;
    wake?.();
    if (inFlight === 0) allSettled?.();
  };

  for await (const body of bodies) {
    if (error !== undefined || signal?.aborted) break;
    if (inFlight >= window) await new Promise<void>((resolve) => roomWaiter = resolve);
    if (error !== undefined) break;
    await publisher.writable();
    const index = published++;
    inFlight++;
    publisher.publish(body, { confirmTimeout }).then(
      () => {
        confirmed++;
        onConfirmed(confirmed, published);
      },
      (failure: unknown) => {
        error ??= failure;
        firstFailed = Math.min(firstFailed, index);
      },
    ).finally(settled);
  }
  if (inFlight > 0) await new Promise<void>((resolve) => allSettled = resolve);
  const result: SendAllResult = {
    published,
    confirmed,
    confirmedPrefix: Math.min(firstFailed, published),
  };
  if (error !== undefined) result.error = error;
  return result;
}

/** The non-empty lines of a byte stream, decoded as UTF-8. */
export async function* nonEmptyLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    const lines = (rest + chunk).split("\n");
    rest = lines.pop() ?? "";
    for (const line of lines) {
      const task = line.endsWith("\r") ? line.slice(0, -1) : line;
      if (task !== "") yield task;
    }
  }
  const last = rest.endsWith("\r") ? rest.slice(0, -1) : rest;
  if (last !== "") yield last;
}
