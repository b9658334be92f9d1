#!/usr/bin/env -S deno run --allow-net --allow-env=AMQP_URL,AMQP_CA_FILE,TASK_QUEUE_TYPE --allow-read --allow-run --allow-sys=hostname
/**
 * The worker: takes tasks from the durable task queue (fair dispatch), does them, and acks each
 * task only once it is done, so a task whose worker dies goes to another worker. A task that
 * fails is retried after a delay, and parked in `<queue>.dead` after its last try.
 *
 * ```sh
 * deno task worker                             # the tutorial: a second of pretend work per dot
 * deno task worker --exec './resize.sh'        # real work: the body on stdin, exit 0 = done
 * deno task worker --exec 'python3 job.py' --concurrency 4 --task-timeout 60000
 * ```
 *
 * Ctrl+C (SIGINT) or SIGTERM: stop taking tasks, finish and ack the ones in hand, exit 0.
 * A second signal, or the shutdown timeout passing, exits at once with 130; the broker then
 * redelivers whatever was not acked.
 *
 * Exit codes: 0 stopped by a signal, 1 runtime failure (broker unreachable at start), 2 bad
 * arguments, 130 stopped without finishing the tasks in hand.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import {
  parseBrokerList,
  parseQueueType,
  type QueueType,
  readCaFile,
  validateQueueName,
} from "./lib/amqp.ts";
import { EXIT, runCommand } from "./lib/cli.ts";
import { runWorker, type TaskHandler, type WorkerEvent } from "./lib/consumer.ts";
import { execTask } from "./lib/exec.ts";
import { fakeWork } from "./lib/fake_work.ts";
import {
  CA_FLAG,
  type CommandSpec,
  HEARTBEAT_FLAG,
  HELP_FLAG,
  parseInteger,
  QUEUE_FLAG,
  QUEUE_TYPE_FLAG,
  requireString,
  URL_FLAG,
} from "./lib/flags.ts";
import { onShutdownSignal } from "./lib/shutdown.ts";

/** RabbitMQ's default consumer ack timeout: a task still unacked then has its channel closed. */
const BROKER_ACK_TIMEOUT_MS = 1_800_000;

/** The worker's command line. */
export const WORKER_COMMAND: CommandSpec = {
  usage: "deno task worker [OPTIONS]",
  summary: "Take tasks from the task queue and do them, acking each when it is done.",
  flags: [
    URL_FLAG,
    QUEUE_FLAG,
    QUEUE_TYPE_FLAG,
    {
      name: "exec",
      kind: "string",
      valueName: "CMD",
      description:
        "Run CMD with sh -c for each task: body on stdin, TASK_ID, TASK_ATTEMPT, TASK_REDELIVERED in its environment; exit 0 is success. Without it, the tutorial's pretend work.",
    },
    {
      name: "concurrency",
      kind: "string",
      valueName: "N",
      default: "1",
      description: "Tasks run at once by this worker.",
    },
    {
      name: "prefetch",
      kind: "string",
      valueName: "N",
      description:
        "Unacked tasks the broker may hand this worker at once (default: the concurrency, which is fair dispatch).",
    },
    {
      name: "task-timeout",
      kind: "string",
      valueName: "MS",
      default: "1500000",
      description:
        "A try still running after MS is stopped (SIGTERM, SIGKILL 5 s later) and counts as failed; 0 for no limit.",
    },
    {
      name: "max-retries",
      kind: "string",
      valueName: "N",
      default: "3",
      description: "Retries of a failed task before it is parked in <queue>.dead.",
    },
    {
      name: "retry-delay",
      kind: "string",
      valueName: "MS",
      default: "1000",
      description:
        "Wait before the first retry, doubled for each further one (at most 10 minutes).",
    },
    {
      name: "dot-ms",
      kind: "string",
      valueName: "MS",
      default: "1000",
      description: "Milliseconds of pretend work per dot in a task's body (without --exec).",
    },
    {
      name: "shutdown-timeout",
      kind: "string",
      valueName: "MS",
      default: "30000",
      description: "On SIGINT/SIGTERM, how long tasks in hand may take to finish before exit 130.",
    },
    HEARTBEAT_FLAG,
    CA_FLAG,
    HELP_FLAG,
  ],
};

interface WorkerConfig {
  url: string;
  queue: string;
  queueType: QueueType;
  exec: string | undefined;
  concurrency: number;
  prefetch: number;
  taskTimeout: number;
  maxRetries: number;
  retryDelay: number;
  dotMs: number;
  shutdownTimeout: number;
  heartbeat: number;
  ca: string | undefined;
}

/** Runs the worker with command-line `args`; resolves with the exit code. */
export function main(args: string[]): Promise<number> {
  return runCommand<WorkerConfig>(WORKER_COMMAND, args, {
    configure({ values }) {
      const url = requireString("url", values.url);
      parseBrokerList(url);
      const queue = requireString("queue", values.queue);
      validateQueueName(queue);
      const concurrency = parseInteger("concurrency", values.concurrency, { min: 1, max: 65535 });
      return {
        url,
        queue,
        queueType: parseQueueType(requireString("queue-type", values["queue-type"])),
        exec: values.exec === undefined ? undefined : requireString("exec", values.exec),
        concurrency,
        prefetch: values.prefetch === undefined
          ? concurrency
          : parseInteger("prefetch", values.prefetch, { min: concurrency, max: 65535 }),
        taskTimeout: parseInteger("task-timeout", values["task-timeout"], { min: 0 }),
        maxRetries: parseInteger("max-retries", values["max-retries"], { min: 0, max: 1000 }),
        retryDelay: parseInteger("retry-delay", values["retry-delay"], { min: 1, max: 86_400_000 }),
        dotMs: parseInteger("dot-ms", values["dot-ms"], { min: 0 }),
        shutdownTimeout: parseInteger("shutdown-timeout", values["shutdown-timeout"], { min: 0 }),
        heartbeat: parseInteger("heartbeat", values.heartbeat, { min: 0, max: 3600 }),
        ca: typeof values.ca === "string" ? readCaFile(values.ca) : undefined,
      };
    },
    async run(config) {
      if (config.taskTimeout === 0 || config.taskTimeout > BROKER_ACK_TIMEOUT_MS) {
        console.error(
          `Warning: --task-timeout ${config.taskTimeout} lets a task run past RabbitMQ's default consumer ack timeout (30 min), after which the broker closes the channel and redelivers the task; raise consumer_timeout on the broker too`,
        );
      }
      const stop = new AbortController();
      using _signals = onShutdownSignal({
        onFirst: () => stop.abort(),
        timeout: config.shutdownTimeout,
        onForced: (why) => {
          console.error(`${why}: exiting now; the broker will redeliver unacked tasks`);
          Deno.exit(EXIT.interrupted);
        },
      });
      const command = config.exec;
      const handler: TaskHandler = command === undefined
        ? (task, signal) => fakeWork(task.body.toString(), { dotMs: config.dotMs, signal })
        : (task, signal) =>
          execTask(command, task, {
            signal,
            onOutput: (stream, line) =>
              stream === "stdout" ? console.log(line) : console.error(line),
          });
      await runWorker(config.url, handler, {
        queue: config.queue,
        queueType: config.queueType,
        concurrency: config.concurrency,
        prefetch: config.prefetch,
        taskTimeout: config.taskTimeout,
        maxRetries: config.maxRetries,
        retryDelay: config.retryDelay,
        hostname: Deno.hostname(),
        heartbeat: config.heartbeat,
        ...(config.ca === undefined ? {} : { ca: config.ca }),
        signal: stop.signal,
        onReady: () => console.log(" [*] Waiting for messages. To exit press CTRL+C"),
        onEvent: (event) => {
          const line = describeEvent(event, config.maxRetries + 1);
          if (line === undefined) return;
          if (event.type === "received" || event.type === "done") console.log(line);
          else console.error(line);
        },
      });
      return EXIT.ok;
    },
  });
}

/** A task body as it can be shown on one line: text as is, anything else as its size. */
export function preview(body: Uint8Array): string {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(body);
  } catch {
    return `<${body.length} bytes>`;
  }
  // deno-lint-ignore no-control-regex
  return /[\u0000-\u0008\u000b-\u001f\u007f]/.test(text) ? `<${body.length} bytes>` : text;
}

/** The human log line for a worker event; `tries` is the most tries a task gets. */
export function describeEvent(event: WorkerEvent, tries: number): string | undefined {
  switch (event.type) {
    case "received":
      return ` [x] Received '${preview(Buffer.from(event.body))}'` +
        (event.attempt > 1 ? ` (attempt ${event.attempt} of ${tries})` : "");
    case "done":
      return " [x] Done";
    case "retried":
      return ` [!] Task ${event.id} failed (${event.reason}), attempt ${event.attempt} of ${tries}; retrying in ${event.delayMs} ms`;
    case "dead_lettered":
      return ` [!] Task ${event.id} failed (${event.reason}) after ${event.attempts} attempts; parked in ${event.queue}`;
    case "warning":
      return event.message;
    case "connection_lost":
      return `Lost the connection to the broker (${event.reason}); reconnecting`;
    case "reconnecting":
      return `Reconnecting to ${event.url} (attempt ${event.attempt}) in ${event.delay} ms: ${event.reason}`;
    case "reconnected":
      return `Reconnected to ${event.url}; consuming again`;
    case "channel_lost":
      return `The broker closed the channel (${event.reason}); opening a new one`;
    case "consumer_cancelled":
      return "The broker cancelled the consumer (queue deleted?); declaring the queue again";
    case "stale_delivery":
      return `Task ${event.id} finished after its channel was lost; the broker will redeliver it`;
  }
}

if (import.meta.main) Deno.exitCode = await main(Deno.args);
