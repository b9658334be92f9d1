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
 * With `--max-tasks N` it stops the same way by itself after taking N tasks (a worker recycled by
 * its supervisor, or a batch job).
 *
 * Exit codes: 0 stopped by a signal or after --max-tasks, 1 runtime failure (broker unreachable at start), 2 bad
 * arguments, 130 stopped without finishing the tasks in hand.
 *
 * @module
 */

import {
  parseBrokerList,
  parseQueueType,
  type QueueType,
  readCaFile,
  validateQueueName,
} from "./lib/amqp.ts";
import { EXIT, runCommand } from "./lib/cli.ts";
import { runWorker, type TaskHandler, type WorkerEvent } from "./lib/consumer.ts";
import { serveMetrics, WorkerMetrics } from "./lib/metrics.ts";
import { LineWriter } from "./lib/output.ts";
import { describeEvent, isTaskLine, jsonEvent, Summary } from "./lib/worker_output.ts";
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

/**
 * RabbitMQ's default consumer ack timeout: a task still unacked then is taken back (its channel
 * closed; from RabbitMQ 4.3 its consumer cancelled, and on quorum queues only).
 */
const BROKER_ACK_TIMEOUT_MS = 1_800_000;

/** RabbitMQ 4.x's default delivery-limit of quorum queues: a task delivered more often is dropped. */
const BROKER_DELIVERY_LIMIT = 20;

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
    {
      name: "max-tasks",
      kind: "string",
      valueName: "N",
      default: "0",
      description:
        "Take N tasks, then stop as on SIGTERM (finish and ack them, exit 0); deliveries past N go back to the queue. 0 for no limit.",
    },
    {
      name: "quiet",
      kind: "boolean",
      description:
        "No line per task (received, done), for fast cheap tasks; failures, warnings, connection events and the summary still show.",
    },
    {
      name: "json",
      kind: "boolean",
      description:
        "Log one JSON object per line for every event (started, received, done, retried, dead_lettered, connection_lost, reconnected, shutdown, ...) instead of the tutorial's lines.",
    },
    {
      name: "metrics-port",
      kind: "string",
      valueName: "PORT",
      description:
        "Serve Prometheus metrics on http://0.0.0.0:PORT/metrics and a health check on /healthz (200 while consuming, 503 otherwise); 0 picks a free port.",
    },
    {
      name: "summary-interval",
      kind: "string",
      valueName: "SECONDS",
      default: "60",
      description:
        "Every SECONDS, a one-line summary (tasks done and failed, rate) when there were any; 0 for none.",
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
  maxTasks: number;
  quiet: boolean;
  json: boolean;
  metricsPort: number | undefined;
  summaryInterval: number;
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
        maxTasks: parseInteger("max-tasks", values["max-tasks"], { min: 0 }),
        quiet: values.quiet === true,
        json: values.json === true,
        metricsPort: values["metrics-port"] === undefined
          ? undefined
          : parseInteger("metrics-port", values["metrics-port"], { min: 0, max: 65535 }),
        summaryInterval: parseInteger("summary-interval", values["summary-interval"], { min: 0 }),
      };
    },
    async run(config) {
      const tries = config.maxRetries + 1;
      const print = new LineWriter();
      const metrics = new WorkerMetrics(config.queue);
      const summary = new Summary();
      const emit = (event: WorkerEvent | { type: string; [key: string]: unknown }) => {
        if (config.quiet && isTaskLine(event as WorkerEvent)) return;
        if (config.json) return print.out(jsonEvent(event));
        const line = event.type === "metrics_listening"
          ? `Metrics on ${event.url}, health on /healthz`
          : describeEvent(event as WorkerEvent, tries);
        if (line === undefined) return;
        if (isTaskLine(event as WorkerEvent)) print.out(line);
        else print.err(line);
      };
      if (config.taskTimeout === 0 || config.taskTimeout > BROKER_ACK_TIMEOUT_MS) {
        emit({
          type: "warning",
          message:
            `Warning: --task-timeout ${config.taskTimeout} lets a task run past RabbitMQ's default consumer ack timeout (30 min; from RabbitMQ 4.3 on quorum queues only), after which the broker takes the task back and redelivers it; raise consumer_timeout on the broker too`,
        });
      }
      if (config.queueType === "quorum" && config.maxRetries >= BROKER_DELIVERY_LIMIT) {
        emit({
          type: "warning",
          message:
            `Warning: --max-retries ${config.maxRetries} on a quorum queue: from RabbitMQ 4.0 the broker drops a task delivered more than ${BROKER_DELIVERY_LIMIT} times without an ack (its default delivery-limit) before its tries here are used up; keep --max-retries below ${BROKER_DELIVERY_LIMIT} or raise delivery-limit with a policy`,
        });
      }
      const stop = new AbortController();
      using _signals = onShutdownSignal({
        onFirst: () => stop.abort(),
        timeout: config.shutdownTimeout,
        onForced: (why) => {
          emit({
            type: "warning",
            message: `${why}: exiting now; the broker will redeliver unacked tasks`,
          });
          print.flush();
          Deno.exit(EXIT.interrupted);
        },
      });
      const server = config.metricsPort === undefined ? undefined : serveMetrics(
        config.metricsPort,
        metrics,
        {
          onListen: (port) =>
            emit({ type: "metrics_listening", port, url: `http://0.0.0.0:${port}/metrics` }),
        },
      );
      const ticker = config.summaryInterval > 0 && !config.json
        ? setInterval(() => {
          const line = summary.take();
          if (line) print.err(line);
        }, config.summaryInterval * 1000)
        : undefined;
      const command = config.exec;
      const output = (stream: "stdout" | "stderr", line: string) => {
        if (config.json) emit({ type: "output", stream, line });
        else if (stream === "stdout") print.out(line);
        else print.err(line);
      };
      const handler: TaskHandler = command === undefined
        ? (task, signal) => fakeWork(task.body, { dotMs: config.dotMs, signal })
        : (task, signal) => execTask(command, task, { signal, onOutput: output });
      try {
        await runWorker(config.url, handler, {
          queue: config.queue,
          queueType: config.queueType,
          concurrency: config.concurrency,
          prefetch: config.prefetch,
          taskTimeout: config.taskTimeout,
          maxRetries: config.maxRetries,
          retryDelay: config.retryDelay,
          maxTasks: config.maxTasks,
          hostname: Deno.hostname(),
          heartbeat: config.heartbeat,
          ...(config.ca === undefined ? {} : { ca: config.ca }),
          signal: stop.signal,
          onReady: () =>
            config.json
              ? emit({ type: "started", queue: config.queue, concurrency: config.concurrency })
              : print.out(" [*] Waiting for messages. To exit press CTRL+C"),
          beforeAck: () => print.flush(),
          onEvent: (event) => {
            metrics.record(event);
            summary.record(event);
            emit(event);
          },
        });
      } finally {
        print.flush();
        clearInterval(ticker);
        metrics.stopped();
        await server?.shutdown();
      }
      emit({ type: "shutdown" });
      print.flush();
      return EXIT.ok;
    },
  });
}

if (import.meta.main) Deno.exitCode = await main(Deno.args);
