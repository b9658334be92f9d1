#!/usr/bin/env -S deno run --allow-net --allow-env=AMQP_URL,AMQP_URL_FILE,AMQP_CA_FILE,TASK_QUEUE_TYPE --allow-read
/**
 * The producer: sends one task to the durable task queue and exits 0 only after the broker has
 * confirmed it, so a task reported as sent is on disk in the queue.
 *
 * ```sh
 * deno task send First message.          # one task; each dot is a second of work
 * deno task send                         # sends "Hello World!"
 * deno task send --queue reports Build.  # another queue
 * seq 1000 | deno task send --stdin       # one task per line, pipelined, on one connection
 * deno task send --wait resize photo.jpg  # wait for the outcome: done (0) or parked (1)
 * deno task send --delay 90s Later.       # handed to a worker no earlier than 90 s from now
 * deno task send --at 2026-12-24T18:00:00Z Gifts.
 * ```
 *
 * Exit codes: 0 sent and confirmed (every task, with --stdin), 1 not sent (broker unreachable,
 * refused, no confirm, a --stdin line over 64 MiB; with --stdin it says how many tasks were
 * confirmed; with --wait, a task parked), 2 bad arguments or empty input, 3 with --wait: no
 * outcome within --wait-timeout (the task still runs).
 *
 * @module
 */

import { connect, OutcomeTimeoutError, type Producer } from "./mod.ts";
import { describeOutcome, jsonOutcome } from "./lib/observe/outcome_output.ts";
import { readCaFile } from "./lib/broker/connection.ts";
import { EXIT, runCommand } from "./lib/cli/cli.ts";
import {
  ALLOW_LOSSY_FLAG,
  badInput,
  brokerUrlFromFlags,
  CA_FLAG,
  type CommandSpec,
  HEARTBEAT_FLAG,
  HELP_FLAG,
  MAX_TIMER_MS,
  parseInteger,
  QUEUE_FLAG,
  QUEUE_TYPE_FLAG,
  taskQueueFromFlags,
  URL_FILE_FLAG,
  URL_FLAG,
} from "./lib/cli/flags.ts";
import { nonEmptyLines } from "./lib/produce/bulk_send.ts";
import { parseDuration, parseTime } from "./lib/cli/duration.ts";
import { checkSchedule, delayOf, MAX_DELAY_MS, type Schedule } from "./lib/topology/delays.ts";
import type { TaskQueue } from "./lib/topology/task_queue.ts";
import { describeError, UsageError } from "./lib/broker/errors.ts";

/** The producer's command line. */
export const NEW_TASK_COMMAND: CommandSpec = {
  usage: "deno task send [OPTIONS] [MESSAGE...]",
  summary:
    'Send a task (the words of MESSAGE, or "Hello World!") to the task queue; with --stdin, one task per line.',
  flags: [
    URL_FLAG,
    URL_FILE_FLAG,
    QUEUE_FLAG,
    QUEUE_TYPE_FLAG,
    ALLOW_LOSSY_FLAG,
    {
      name: "stdin",
      kind: "boolean",
      description:
        "Send one task per line of standard input (empty lines skipped), all on one connection: each line's bytes as they are, without the newline (and a \\r before it), up to 64 MiB.",
    },
    {
      name: "window",
      kind: "string",
      valueName: "N",
      default: "20000",
      description:
        "With --stdin: the most tasks published but not yet confirmed at once (and at most 64 MiB of them).",
    },
    {
      name: "wait",
      kind: "boolean",
      description:
        "Wait until a worker has finished the task for good and print its outcome: exit 0 when done, 1 when parked (with the reason), 3 when --wait-timeout passed first (the task still runs). With --stdin, one line per task as they finish.",
    },
    {
      name: "wait-timeout",
      kind: "string",
      valueName: "MS",
      default: "0",
      description: "With --wait: how long to wait for each outcome; 0 for no limit.",
    },
    {
      name: "json",
      kind: "boolean",
      description: "With --wait: print each outcome as one JSON object.",
    },
    {
      name: "confirm-timeout",
      kind: "string",
      valueName: "MS",
      default: "30000",
      description: "How long to wait for the broker to confirm the task before failing.",
    },
    {
      name: "delay",
      kind: "string",
      valueName: "DURATION",
      description:
        "Store the task now, hand it to a worker no earlier than DURATION from now (90s, 15m, 2h, 1h30m, 30d, 1500ms; at most 49 days). With --stdin, each task from when it is sent.",
    },
    {
      name: "at",
      kind: "string",
      valueName: "TIME",
      description:
        "Like --delay, until TIME: ISO 8601 (2026-12-24T18:00:00Z; local time without a zone). With --stdin, the same TIME for all.",
    },
    HEARTBEAT_FLAG,
    CA_FLAG,
    HELP_FLAG,
  ],
};

interface NewTaskConfig {
  url: string;
  queue: TaskQueue;
  /** One task from the command line, or undefined to read tasks from stdin. */
  message: string | undefined;
  window: number;
  confirmTimeout: number;
  wait: boolean;
  waitTimeout: number;
  json: boolean;
  /** When the tasks are due, or undefined for at once. */
  schedule: Schedule | undefined;
  heartbeat: number;
  ca: string | undefined;
}

/** Runs the producer with command-line `args`; resolves with the exit code. */
export function main(args: string[]): Promise<number> {
  return runCommand<NewTaskConfig>(NEW_TASK_COMMAND, args, {
    allowPositionals: true,
    configure(flags) {
      const { values, positionals } = flags;
      const url = brokerUrlFromFlags(flags);
      return {
        url,
        queue: taskQueueFromFlags(values),
        message: values.stdin === true ? stdinOnly(positionals) : taskMessage(positionals),
        window: parseInteger("window", values.window, { min: 1, max: 1_000_000 }),
        confirmTimeout: parseInteger("confirm-timeout", values["confirm-timeout"], {
          min: 1,
          max: MAX_TIMER_MS,
        }),
        wait: values.wait === true,
        waitTimeout: parseInteger("wait-timeout", values["wait-timeout"], {
          min: 0,
          max: MAX_TIMER_MS,
        }),
        json: values.json === true,
        schedule: scheduleOf(values.delay, values.at),
        heartbeat: parseInteger("heartbeat", values.heartbeat, { min: 0, max: 3600 }),
        ca: typeof values.ca === "string"
          ? badInput(() => readCaFile(values.ca as string))
          : undefined,
      };
    },
    async run(config) {
      // Read ahead one line, so that empty input is refused before connecting.
      const tasks = config.message === undefined
        ? nonEmptyLines(Deno.stdin.readable, { name: "standard input" })
        : undefined;
      let first;
      try {
        first = await tasks?.next();
      } catch (error) {
        if (!(error instanceof RangeError)) throw error;
        console.error(`${error.message}: no task sent`);
        return EXIT.failure;
      }
      if (first?.done) {
        console.error("Empty input: no tasks on standard input");
        return EXIT.usage;
      }
      // A one-shot producer: a drop is final, not waited through.
      const connection = await connect(config.url, {
        heartbeat: config.heartbeat,
        recover: false,
        ...(config.ca === undefined ? {} : { ca: config.ca }),
      });
      try {
        let toldBlocked = false;
        const producer = await connection.createProducer(config.queue, {
          onWarning: (line) => console.error(line),
          onBlocked: (reason) => {
            if (toldBlocked) return;
            toldBlocked = true;
            console.error(`The broker is blocking publishers (${reason}); waiting until it stops`);
          },
        });
        if (config.message !== undefined && config.wait) {
          return await sendOneAndWait(producer, config.message, config);
        }
        if (config.message !== undefined) {
          // One task: its time is fixed now, so that the line below tells it exactly.
          const at = config.schedule && (config.schedule.at ?? dueAt(config.schedule));
          await producer.send(config.message, {
            confirmTimeout: config.confirmTimeout,
            ...(at ? { at } : {}),
          });
          console.log(` [x] Sent '${config.message}'${at ? `, due at ${at.toISOString()}` : ""}`);
          return EXIT.ok;
        }
        if (config.wait) {
          return await sendStdinAndWait(producer, prepend(first!.value!, tasks!), config);
        }
        return await sendStdin(producer, prepend(first!.value!, tasks!), config);
      } finally {
        await connection.close().catch(() => {});
      }
    },
  });
}

async function sendOneAndWait(
  producer: Producer,
  message: string,
  config: NewTaskConfig,
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

async function sendStdinAndWait(
  producer: Producer,
  tasks: AsyncIterable<Uint8Array>,
  config: NewTaskConfig,
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

async function sendStdin(
  producer: Producer,
  tasks: AsyncIterable<Uint8Array>,
  config: NewTaskConfig,
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

/**
 * The schedule of `--delay` or `--at`, or undefined for tasks due at once.
 *
 * @throws {UsageError} when both are given, or either is not a duration or time the queue takes.
 */
export function scheduleOf(
  delay: string | boolean | undefined,
  at: string | boolean | undefined,
): Schedule | undefined {
  if (delay !== undefined && at !== undefined) {
    throw new UsageError("Give either --delay or --at, not both");
  }
  if (typeof delay === "string") {
    const ms = badInput(() => parseDuration(delay));
    if (ms > MAX_DELAY_MS) {
      throw new UsageError(
        `Invalid value "${delay}" for --delay: at most ${MAX_DELAY_MS} ms (about 49.7 days)`,
      );
    }
    return badInput(() => checkSchedule({ delay: ms }));
  }
  if (typeof at === "string") {
    const time = badInput(() => parseTime(at));
    badInput(() => delayOf({ at: time }));
    return { at: time };
  }
  return undefined;
}

/** The time a task of `schedule` sent now is due. */
function dueAt(schedule: Schedule): Date {
  const now = Date.now();
  return new Date(now + delayOf(schedule, now));
}

/** With --stdin the tasks come from standard input only. */
function stdinOnly(words: readonly string[]): undefined {
  if (words.length > 0) throw new UsageError("Give either MESSAGE or --stdin, not both");
  return undefined;
}

/** The task body: the words joined by spaces, or the tutorial's "Hello World!" for none. */
export function taskMessage(words: readonly string[]): string {
  if (words.length === 0) return "Hello World!";
  const message = words.join(" ");
  if (message.trim() === "") throw new UsageError("Empty message: nothing to send");
  return message;
}

if (import.meta.main) Deno.exitCode = await main(Deno.args);
