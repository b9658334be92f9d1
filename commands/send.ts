/**
 * The producer's paths besides the one-shot send: tasks from standard input (`--stdin`) and
 * waiting for outcomes (`--wait`). `new_task.ts` loads this module only for them, so that sending
 * one task loads and compiles none of it.
 *
 * @module
 */

import { Producer, type ProducerHost, type ProducerOptions } from "../lib/produce/producer.ts";
import { OutcomeTimeoutError } from "../lib/produce/outcomes.ts";
import { describeOutcome, jsonOutcome } from "../lib/observe/outcome_output.ts";
import { EXIT } from "../lib/cli/cli.ts";
import { nonEmptyLines } from "../lib/produce/bulk_send.ts";
import type { Schedule } from "../lib/topology/delays.ts";
import type { TaskQueue } from "../lib/topology/task_queue.ts";
import { describeError } from "../lib/broker/errors.ts";

/** The settings of `new_task.ts` these paths use. */
export interface SendSettings {
  /** The most tasks published but not yet confirmed, with --stdin. */
  window: number;
  /** How long to wait for each confirm, in ms. */
  confirmTimeout: number;
  /** With --wait: how long to wait for each outcome, in ms; 0 for no limit. */
  waitTimeout: number;
  /** With --wait: each outcome as one JSON object. */
  json: boolean;
  /** When the tasks are due, or undefined for at once. */
  schedule: Schedule | undefined;
}

/** Opens a {@linkcode Producer} for `queue` on `connection`: its channel open, the queue declared. */
export async function openProducer(
  connection: ProducerHost,
  queue: TaskQueue,
  options: ProducerOptions,
): Promise<Producer> {
  const producer = new Producer(connection, queue, options);
  await producer.open();
  return producer;
}

/**
 * The tasks on standard input, one a line, or the exit code when there are none to send: the
 * first line is read ahead, so that empty input is refused before connecting.
 */
export async function stdinTasks(): Promise<AsyncIterable<Uint8Array> | number> {
  const tasks = nonEmptyLines(Deno.stdin.readable, { name: "standard input" });
  let first;
  try {
    first = await tasks.next();
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    console.error(`${error.message}: no task sent`);
    return EXIT.failure;
  }
  if (first.done) {
    console.error("Empty input: no tasks on standard input");
    return EXIT.usage;
  }
  return prepend(first.value, tasks);
}

/** Sends `message` and prints its outcome; resolves with the exit code. */
export async function sendOneAndWait(
  producer: Producer,
  message: string,
  config: SendSettings,
): Promise<number> {
  try {
    const outcome = await producer.sendAndWait(message, {
      confirmTimeout: config.confirmTimeout,
      wait: { timeout: config.waitTimeout },
      onSent: () => {
        if (!config.json) console.log(` [x] Sent '${message}'`);
      },
    });
    console.log(config.json ? jsonOutcome(outcome) : describeOutcome(outcome));
    return outcome.status === "done" ? EXIT.ok : EXIT.failure;
  } catch (error) {
    if (!(error instanceof OutcomeTimeoutError)) throw error;
    console.error(describeError(error));
    return EXIT.waitTimeout;
  }
}

/** Sends `tasks` and prints each outcome as it comes; resolves with the exit code. */
export async function sendStdinAndWait(
  producer: Producer,
  tasks: AsyncIterable<Uint8Array>,
  config: SendSettings,
): Promise<number> {
  const started = performance.now();
  const result = await producer.sendManyAndWait(tasks, {
    window: config.window,
    confirmTimeout: config.confirmTimeout,
    wait: { timeout: config.waitTimeout },
    onOutcome: (outcome, index) =>
      console.log(
        config.json
          ? jsonOutcome(outcome, { line: index + 1 })
          : describeOutcome(outcome, ` (line ${index + 1})`),
      ),
  });
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  const done = result.outcomes.filter((outcome) => outcome.status === "done").length;
  const parked = result.outcomes.length - done;
  const summary =
    ` [=] ${result.confirmed} tasks sent in ${seconds} s: ${done} done, ${parked} parked${
      result.missing > 0 ? `, ${result.missing} without an outcome in time (still running)` : ""
    }`;
  if (result.error !== undefined) {
    console.error(
      `${
        describeError(result.error)
      }. The first ${result.confirmedPrefix} tasks are all confirmed: re-send from task ${
        result.confirmedPrefix + 1
      }`,
    );
  }
  if (config.json) console.error(summary);
  else console.log(summary);
  if (result.error !== undefined || parked > 0) return EXIT.failure;
  return result.missing > 0 ? EXIT.waitTimeout : EXIT.ok;
}

async function* prepend<T>(first: T, rest: AsyncIterable<T>): AsyncGenerator<T> {
  yield first;
  yield* rest;
}

/** Sends `tasks`, with a progress line on a terminal; resolves with the exit code. */
export async function sendStdin(
  producer: Producer,
  tasks: AsyncIterable<Uint8Array>,
  config: SendSettings,
): Promise<number> {
  const started = performance.now();
  const progress = Deno.stderr.isTerminal() ? new ProgressLine(started) : undefined;
  const result = await producer.sendMany(tasks, {
    window: config.window,
    confirmTimeout: config.confirmTimeout,
    ...config.schedule,
    ...(progress ? { onConfirmed: (confirmed: number) => progress.update(confirmed) } : {}),
  });
  progress?.clear();
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  if (result.error === undefined) {
    const at = config.schedule?.at;
    console.log(
      ` [x] Sent ${result.confirmed} tasks in ${seconds} s${
        at ? `, due at ${at.toISOString()}` : ""
      }`,
    );
    return EXIT.ok;
  }
  console.error(
    `${
      describeError(result.error)
    }. Confirmed ${result.confirmed} of ${result.published} tasks published; the first ${result.confirmedPrefix} are all confirmed: re-send from task ${
      result.confirmedPrefix + 1
    }`,
  );
  return EXIT.failure;
}

/** A progress line on a terminal: count and rate, redrawn at most five times a second. */
class ProgressLine {
  #started: number;
  #last = 0;

  constructor(started: number) {
    this.#started = started;
  }

  update(confirmed: number): void {
    const now = performance.now();
    if (now - this.#last < 200) return;
    this.#last = now;
    const rate = Math.round(confirmed / ((now - this.#started) / 1000));
    Deno.stderr.writeSync(new TextEncoder().encode(`\r  ${confirmed} tasks confirmed (${rate}/s)`));
  }

  clear(): void {
    Deno.stderr.writeSync(new TextEncoder().encode("\r\x1b[K"));
  }
}
