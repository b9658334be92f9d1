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

import { connectOnce, readCaFile } from "./lib/broker/connection.ts";
import { type OpenPublisherOptions, TaskPublisher } from "./lib/produce/publisher.ts";
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
import { checkSchedule, delayOf, MAX_DELAY_MS, type Schedule } from "./lib/topology/delays.ts";
import type { TaskQueue } from "./lib/topology/task_queue.ts";
import { UsageError } from "./lib/broker/errors.ts";
import type { SendSettings } from "./commands/send.ts";

// Computed, not written out: Deno reads, hashes and looks up every module a literal import()
// names (and everything those import) before the first line runs, whether or not the import
// happens; for --stdin and --wait that is 13 modules a one-shot send would load for nothing
// (3 M instructions, 1 % of its run). deno compile is told to include them (deno.json).
const SEND_COMMANDS = new URL("./commands/send.ts", import.meta.url).href;

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

interface NewTaskConfig extends SendSettings {
  url: string;
  queue: TaskQueue;
  /** One task from the command line, or undefined to read tasks from stdin. */
  message: string | undefined;
  wait: boolean;
  heartbeat: number;
  ca: string | undefined;
}

/** Runs the producer with command-line `args`; resolves with the exit code. */
export function main(args: string[]): Promise<number> {
  return runCommand<NewTaskConfig>(NEW_TASK_COMMAND, args, {
    allowPositionals: true,
    async configure(flags) {
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
        schedule: await scheduleOf(values.delay, values.at),
        heartbeat: parseInteger("heartbeat", values.heartbeat, { min: 0, max: 3600 }),
        ca: typeof values.ca === "string"
          ? badInput(() => readCaFile(values.ca as string))
          : undefined,
      };
    },
    async run(config) {
      // --stdin and --wait load their code only when asked for: a one-shot send runs none of it.
      const more = config.message === undefined || config.wait
        ? await import(SEND_COMMANDS) as typeof import("./commands/send.ts")
        : undefined;
      const tasks = config.message === undefined ? await more!.stdinTasks() : undefined;
      if (typeof tasks === "number") return tasks;
      // A drop is final, not waited through: the connection itself, without amqplib's recovery
      // and with no library connection around it (that would load the worker's code too).
      const connection = await connectOnce(config.url, {
        heartbeat: config.heartbeat,
        ...(config.ca === undefined ? {} : { ca: config.ca }),
      });
      try {
        let toldBlocked = false;
        const options: OpenPublisherOptions = {
          onWarning: (line) => console.error(line),
          onBlocked: (reason) => {
            if (toldBlocked) return;
            toldBlocked = true;
            console.error(`The broker is blocking publishers (${reason}); waiting until it stops`);
          },
        };
        if (more) {
          // --stdin and --wait go through the library's Producer, loaded with their code.
          const producer = await more.openProducer(connection, config.queue, options);
          if (tasks === undefined) {
            return await more.sendOneAndWait(producer, config.message!, config);
          }
          return config.wait
            ? await more.sendStdinAndWait(producer, tasks, config)
            : await more.sendStdin(producer, tasks, config);
        }
        // One task: the publish path that Producer.send takes, without the Producer around it.
        const publisher = await TaskPublisher.open(connection, config.queue, options);
        const message = config.message!;
        // Its time is fixed now, so that the line below tells it exactly.
        const at = config.schedule && (config.schedule.at ?? dueAt(config.schedule));
        await publisher.publish(message, {
          confirmTimeout: config.confirmTimeout,
          ...(at ? { at } : {}),
        });
        console.log(` [x] Sent '${message}'${at ? `, due at ${at.toISOString()}` : ""}`);
        return EXIT.ok;
      } finally {
        // Closing the connection closes the producer's channel with it: no round trip for it.
        await connection.close().catch(() => {});
      }
    },
  });
}

/**
 * The schedule of `--delay` or `--at`, or undefined for tasks due at once.
 *
 * @throws {UsageError} when both are given, or either is not a duration or time the queue takes.
 */
export async function scheduleOf(
  delay: string | boolean | undefined,
  at: string | boolean | undefined,
): Promise<Schedule | undefined> {
  if (delay !== undefined && at !== undefined) {
    throw new UsageError("Give either --delay or --at, not both");
  }
  if (typeof delay !== "string" && typeof at !== "string") return undefined;
  // Loaded only for a delayed task: a one-shot send of a task due at once reads no duration.
  const { parseDuration, parseTime } = await import("./lib/cli/duration.ts");
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
