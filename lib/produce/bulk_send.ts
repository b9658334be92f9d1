/**
 * Many tasks on one connection: publishes pipelined with a bounded window of unconfirmed tasks,
 * waiting on the channel's backpressure, and an account of exactly what was confirmed.
 *
 * @module
 */

import { AmqpError } from "../broker/errors.ts";
import { type Clock, SYSTEM_CLOCK } from "../consume/deadlines.ts";
import { splitLines, type SplitLinesOptions } from "../io/read_lines.ts";
import { checkSchedule } from "../topology/delays.ts";
import type { TaskProperties, TaskPublisher } from "./publisher.ts";

/** What {@linkcode sendAll} uses of a publisher (`prepareDelays` only for delayed tasks). */
export type BulkPublisher =
  & Pick<TaskPublisher, "send" | "full" | "writable" | "blocked">
  & Partial<Pick<TaskPublisher, "prepareDelays">>;

/** Options for {@linkcode sendAll}. */
export interface SendAllOptions {
  /**
   * The most tasks published but not yet confirmed at any time. Large, because the broker
   * confirms persistent tasks only once they are on disk: a small window waits for its syncs.
   * @default {20000}
   */
  window?: number;
  /**
   * The most bytes of task bodies published but not yet confirmed at any time, so that a window
   * of large tasks stays within memory.
   * @default {67108864}
   */
  windowBytes?: number;
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
  /**
   * The clock that times the confirms.
   * @default {SYSTEM_CLOCK}
   */
  clock?: Clock;
  /**
   * AMQP properties for every task.
   * @default {undefined}
   */
  properties?: TaskProperties;
  /**
   * Called as each task is published, with its id and its place in `bodies` (from 0).
   * @default {undefined}
   */
  onPublished?: (id: string, index: number) => void;
  /**
   * Milliseconds each task waits, from its own publish, before a worker may get it (see
   * `PublishOptions.delay`).
   * @default {0}
   */
  delay?: number;
  /**
   * The time before which no worker gets any of the tasks, instead of `delay`.
   * @default {undefined}
   */
  at?: Date;
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
 * first failure and reports how far it got; it never throws for a failed task, nor when `bodies`
 * throws (that is the failure reported, after the tasks before it).
 */
export async function sendAll(
  publisher: BulkPublisher,
  bodies: AsyncIterable<string | Uint8Array> | Iterable<string | Uint8Array>,
  options: SendAllOptions = {},
): Promise<SendAllResult> {
  const {
    window = 20_000,
    windowBytes = 64 * 1024 * 1024,
    confirmTimeout = 30_000,
    onConfirmed = () => {},
    signal,
    clock = SYSTEM_CLOCK,
    properties,
    onPublished,
    delay,
    at,
  } = options;
  if (!Number.isSafeInteger(windowBytes) || windowBytes < 1) {
    throw new RangeError(
      `Invalid windowBytes "${windowBytes}": expected a whole number of at least 1`,
    );
  }
  const schedule = checkSchedule({
    ...(delay === undefined ? {} : { delay }),
    ...(at === undefined ? {} : { at }),
  });
  if (!Number.isInteger(window) || window < 1) {
    throw new RangeError(`Invalid window "${window}": expected a whole number of at least 1`);
  }
  if (!(confirmTimeout > 0)) {
    throw new RangeError(`Invalid confirm timeout "${confirmTimeout}": expected milliseconds > 0`);
  }
  if (schedule) {
    if (!publisher.prepareDelays) throw new TypeError("Cannot send delayed tasks: no delay levels");
    try {
      await publisher.prepareDelays();
    } catch (error) {
      return { published: 0, confirmed: 0, confirmedPrefix: 0, error };
    }
  }
  let published = 0;
  let confirmed = 0;
  let inFlight = 0;
  let bytesInFlight = 0;
  // Tasks 0 to settledPrefix - 1 are all settled (confirmed or failed); those settled past it,
  // when confirms come out of order, wait in settledAhead. The first unsettled task is where a
  // stalled send must be taken up again.
  let settledPrefix = 0;
  const settledAhead = new Set<number>();
  let firstFailed = Infinity;
  let error: unknown;
  let wake: (() => void) | undefined;
  // Ends a wait for "drain" at the first failure or the stall: a broker that stopped reading
  // never drains.
  let interrupt: (() => void) | undefined;
  let stalled = false;
  // One timer for the whole window rather than one per task: the send has stalled when tasks are
  // in flight and no confirm came for `confirmTimeout`, not counting time the broker blocked us.
  // Its period divides `confirmTimeout`, so a task published after an idle spell, or unblocked,
  // just after a tick still has its whole `confirmTimeout` before the tick that gives up on it.
  const period = Math.min(1000, Math.max(10, confirmTimeout / 4));
  let lastProgress = clock.now();
  const watchdog = clock.setInterval(
    () => {
      const now = clock.now();
      if (publisher.blocked || inFlight === 0) lastProgress = now;
      else if (!stalled && now - lastProgress > confirmTimeout) {
        stalled = true;
        error ??= new AmqpError(`No confirm from the broker for ${confirmTimeout} ms`);
        interrupt?.();
        wakeUp();
      }
    },
    Number.isFinite(confirmTimeout) ? confirmTimeout / Math.ceil(confirmTimeout / period) : period,
  );
  // A full window is refilled once half of it is confirmed, not one task per confirm: a burst of
  // publishes goes out in a few socket writes instead of one write per task.
  const lowWater = Math.floor(window / 2);
  let wakeAt = 0;
  const wakeUp = () => {
    if (
      (inFlight > wakeAt || bytesInFlight >= windowBytes / 2 && inFlight > 0) &&
      error === undefined && !stalled
    ) return;
    const waiting = wake;
    wake = undefined;
    waiting?.();
  };
  const room = (atMost: number) =>
    new Promise<void>((resolve) => {
      wakeAt = atMost;
      wake = resolve;
    });
  // The bodies may fail to be read on (a line too long, say): what was published is then still
  // waited for, and the failure told as one of a task would be. Nothing else in the loop throws.
  let readError: unknown;
  try {
    for await (const body of bodies) {
      if (error !== undefined || signal?.aborted) break;
      if (inFlight >= window || bytesInFlight >= windowBytes) await room(lowWater);
      if (publisher.full && error === undefined) {
        await new Promise<void>((resolve) => {
          interrupt = resolve;
          void publisher.writable().then(resolve);
        });
        interrupt = undefined;
      }
      if (error !== undefined) break;
      const index = published++;
      const size = body.length;
      inFlight++;
      bytesInFlight += size;
      const id = crypto.randomUUID();
      onPublished?.(id, index);
      publisher.send(
        body,
        id,
        (failure) => {
          inFlight--;
          bytesInFlight -= size;
          lastProgress = clock.now();
          if (index !== settledPrefix) settledAhead.add(index);
          else {
            settledPrefix++;
            while (settledAhead.size > 0 && settledAhead.delete(settledPrefix)) settledPrefix++;
          }
          if (failure === undefined) {
            confirmed++;
            onConfirmed(confirmed, published);
          } else {
            error ??= failure;
            firstFailed = Math.min(firstFailed, index);
            interrupt?.();
          }
          wakeUp();
        },
        properties,
        schedule,
      );
    }
  } catch (failure) {
    readError = failure;
  }
  try {
    if (readError !== undefined && error === undefined) {
      error = readError;
      firstFailed = Math.min(firstFailed, published);
    }
    while (inFlight > 0 && !stalled) await room(0);
  } finally {
    clock.clearInterval(watchdog);
  }
  const result: SendAllResult = {
    published,
    confirmed,
    confirmedPrefix: Math.min(firstFailed, settledPrefix),
  };
  if (error !== undefined) result.error = error;
  return result;
}

/**
 * The non-empty lines of a byte stream, each as its bytes exactly (not decoded: a task's body
 * may be any bytes but `\n`), without the `\n` and a `\r` before it.
 *
 * @throws {RangeError} at a line longer than `maxLength` ({@linkcode MAX_LINE_BYTES}, 64 MiB),
 * once the lines before it were yielded.
 */
export async function* nonEmptyLines(
  stream: ReadableStream<Uint8Array>,
  options: Pick<SplitLinesOptions, "maxLength" | "name"> = {},
): AsyncGenerator<Uint8Array> {
  for await (const line of splitLines(stream, options)) {
    const task = line.at(-1) === 0x0d ? line.subarray(0, -1) : line;
    if (task.length > 0) yield task;
  }
}
