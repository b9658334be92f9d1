#!/usr/bin/env -S deno run --v8-flags=--max-semi-space-size=2 --allow-net --allow-env=AMQP_URL,AMQP_URL_FILE,AMQP_CA_FILE,TASK_QUEUE_TYPE --allow-read --allow-run --allow-sys=hostname
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
 * its supervisor, or a batch job), and so it does when its stdout or stderr is closed
 * (`worker.ts | head -1`).
 *
 * Exit codes: 0 stopped by a signal or after --max-tasks, 1 runtime failure (broker unreachable at start), 2 bad
 * arguments, 130 stopped without finishing the tasks in hand.
 *
 * @module
 */

import { connect, type Worker, type WorkerEvent } from "./mod.ts";
import { readCaFile } from "./lib/broker/connection.ts";
import { UsageError } from "./lib/broker/errors.ts";
import { EXIT, runCommand } from "./lib/cli/cli.ts";
import {
  badInput,
  brokerUrlFromFlags,
  CA_FLAG,
  type CommandSpec,
  HEARTBEAT_FLAG,
  HELP_FLAG,
  MAX_TIMER_MS,
  parseInteger,
  requireString,
  TASK_QUEUE_FLAGS,
  taskQueueFromFlags,
  URL_FILE_FLAG,
  URL_FLAG,
} from "./lib/cli/flags.ts";
import { LineWriter } from "./lib/cli/output.ts";
import { onShutdownSignal } from "./lib/cli/shutdown.ts";
import type { TaskHandler } from "./lib/consume/task.ts";
import { execTask, killRunningCommands } from "./lib/handlers/exec.ts";
import { fakeWork } from "./lib/handlers/fake_work.ts";
import { loadHandler } from "./lib/handlers/module.ts";
import { MetricsListenError, serveMetrics, WorkerMetrics } from "./lib/observe/metrics.ts";
import {
  describeEvent,
  isTaskLine,
  jsonEvent,
  Summary,
  terminalSafe,
} from "./lib/observe/worker_output.ts";
import type { TaskQueue } from "./lib/topology/task_queue.ts";

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
    URL_FILE_FLAG,
    ...TASK_QUEUE_FLAGS,
    {
      name: "handler",
      kind: "string",
      valueName: "FILE",
      description:
        "Run the default export of the TypeScript or JavaScript module FILE, (task, signal) => result, in this process for each task: return = done, throw = failed try, PermanentError = parked at once.",
    },
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
      name: "dot-ms",
      kind: "string",
      valueName: "MS",
      default: "1000",
      description:
        "Milliseconds of pretend work per dot in a task's body (without --exec or --handler).",
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
  queue: TaskQueue;
  exec: string | undefined;
  handler: string | undefined;
  concurrency: number;
  prefetch: number;
  taskTimeout: number;
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

/** Options for {@linkcode main}. */
export interface WorkerMainOptions {
  /**
   * A handler built into this program (a compiled worker binary), used instead of the dots.
   * @default {undefined}
   */
  handler?: TaskHandler;
}

/** Runs the worker with command-line `args`; resolves with the exit code. */
export function main(args: string[], options: WorkerMainOptions = {}): Promise<number> {
  return runCommand<WorkerConfig>(WORKER_COMMAND, args, {
    configure(flags) {
      const { values } = flags;
      const url = brokerUrlFromFlags(flags);
      const concurrency = parseInteger("concurrency", values.concurrency, { min: 1, max: 65535 });
      const kinds = [values.exec, values.handler].filter((value) => value !== undefined);
      if (kinds.length > 1 || (kinds.length > 0 && options.handler)) {
        throw new UsageError(
          options.handler
            ? "This worker has its handler built in: --exec and --handler are not available"
            : "Give --exec or --handler, not both",
        );
      }
      return {
        url,
        queue: taskQueueFromFlags(values),
        exec: values.exec === undefined ? undefined : requireString("exec", values.exec),
        handler: values.handler === undefined
          ? undefined
          : requireString("handler", values.handler),
        concurrency,
        prefetch: values.prefetch === undefined
          ? concurrency
          : parseInteger("prefetch", values.prefetch, { min: concurrency, max: 65535 }),
        taskTimeout: parseInteger("task-timeout", values["task-timeout"], {
          min: 0,
          max: MAX_TIMER_MS,
        }),
        dotMs: parseInteger("dot-ms", values["dot-ms"], { min: 0, max: MAX_TIMER_MS }),
        shutdownTimeout: parseInteger("shutdown-timeout", values["shutdown-timeout"], {
          min: 0,
          max: MAX_TIMER_MS,
        }),
        heartbeat: parseInteger("heartbeat", values.heartbeat, { min: 0, max: 3600 }),
        ca: typeof values.ca === "string"
          ? badInput(() => readCaFile(values.ca as string))
          : undefined,
        maxTasks: parseInteger("max-tasks", values["max-tasks"], { min: 0 }),
        quiet: values.quiet === true,
        json: values.json === true,
        metricsPort: values["metrics-port"] === undefined
          ? undefined
          : parseInteger("metrics-port", values["metrics-port"], { min: 0, max: 65535 }),
        summaryInterval: parseInteger("summary-interval", values["summary-interval"], {
          min: 0,
          max: Math.floor(MAX_TIMER_MS / 1000),
        }),
      };
    },
    async run(config) {
      const stop = new AbortController();
      // A reader that went away (`worker.ts | head -1`) stops the worker as SIGTERM does: the
      // tasks in hand finish and are acked, rather than the write error killing the process.
      const print = new LineWriter({
        onClosed: (stream) => {
          if (!stop.signal.aborted) {
            emit({
              type: "warning",
              message:
                `Cannot write to ${stream}: it was closed; stopping (the tasks in hand finish and are acked)`,
            });
          }
          stop.abort();
        },
      });
      const handler = options.handler ?? await chooseHandler(config, print);
      const metrics = new WorkerMetrics(config.queue.name);
      const summary = new Summary();
      const emit = (event: WorkerEvent | { type: string; [key: string]: unknown }) => {
        if (config.quiet && isTaskLine(event as WorkerEvent)) return;
        if (config.json) return print.out(jsonEvent(event));
        const line = event.type === "metrics_listening"
          ? `Metrics on ${event.url}, health on /healthz`
          : describeEvent(event as WorkerEvent, config.queue.maxTries);
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
      if (config.queue.type === "quorum" && config.queue.maxRetries >= BROKER_DELIVERY_LIMIT) {
        emit({
          type: "warning",
          message:
            `Warning: --max-retries ${config.queue.maxRetries} on a quorum queue: from RabbitMQ 4.0 the broker drops a task delivered more than ${BROKER_DELIVERY_LIMIT} times without an ack (its default delivery-limit) before its tries here are used up; keep --max-retries below ${BROKER_DELIVERY_LIMIT} or raise delivery-limit with a policy`,
        });
      }
      let worker: Worker | undefined;
      using _signals = onShutdownSignal({
        onFirst: () => stop.abort(),
        timeout: config.shutdownTimeout,
        // Commands run in process groups of their own, which a closed terminal does not reach.
        signals: ["SIGINT", "SIGTERM", "SIGHUP"],
        onForced: (why) => {
          // The broker redelivers their tasks: the old runs must not go on beside the new ones.
          killRunningCommands();
          emit({
            type: "warning",
            message: `${why}: exiting now; the broker will redeliver unacked tasks`,
          });
          print.flush();
          Deno.exit(EXIT.interrupted);
        },
      });
      // Before connecting: a port in use is a mistake to report at once, with nothing to undo.
      let server: Deno.HttpServer | undefined;
      try {
        server = config.metricsPort === undefined ? undefined : serveMetrics(
          config.metricsPort,
          metrics,
          {
            onListen: (port) =>
              emit({ type: "metrics_listening", port, url: `http://0.0.0.0:${port}/metrics` }),
          },
        );
      } catch (error) {
        if (!(error instanceof MetricsListenError)) throw error;
        print.err(error.message);
        print.flush();
        return EXIT.failure;
      }
      const connection = await connect(config.url, {
        heartbeat: config.heartbeat,
        ...(config.ca === undefined ? {} : { ca: config.ca }),
      }).catch(async (error) => {
        await server?.shutdown();
        throw error;
      });
      const ticker = config.summaryInterval > 0 && !config.json
        ? setInterval(() => {
          const line = summary.take();
          if (line) print.err(line);
        }, config.summaryInterval * 1000)
        : undefined;
      try {
        worker = connection.createWorker(config.queue, handler, {
          concurrency: config.concurrency,
          prefetch: config.prefetch,
          taskTimeout: config.taskTimeout,
          maxTasks: config.maxTasks,
          hostname: Deno.hostname(),
          signal: stop.signal,
          beforeAck: () => print.flush(),
        });
        let announced = false;
        worker.on("*", (event) => {
          if (event.type === "consuming" && !announced) {
            // Once, before the first task's lines.
            announced = true;
            if (config.json) {
              emit({
                type: "started",
                queue: config.queue.name,
                concurrency: config.concurrency,
              });
            } else print.out(" [*] Waiting for messages. To exit press CTRL+C");
          }
          if (event.type === "state") return;
          metrics.record(event);
          summary.record(event);
          emit(event);
        });
        await worker.ready;
        await worker.stopped;
      } finally {
        print.flush();
        clearInterval(ticker);
        metrics.stopped();
        await connection.close();
        await server?.shutdown();
      }
      emit({ type: "shutdown" });
      print.flush();
      return EXIT.ok;
    },
  });
}

/** The handler the flags ask for: a module's, a command's, or the tutorial's dots. */
async function chooseHandler(config: WorkerConfig, print: LineWriter): Promise<TaskHandler> {
  if (config.handler !== undefined) {
    try {
      return await loadHandler(config.handler);
    } catch (error) {
      if (error instanceof TypeError) throw new UsageError(error.message);
      throw error;
    }
  }
  const command = config.exec;
  if (command === undefined) {
    return (task, signal) => fakeWork(task.body, { dotMs: config.dotMs, signal });
  }
  return (task, signal) =>
    execTask(command, task, {
      signal,
      onOutput: (stream, line) => {
        if (config.json) print.out(jsonEvent({ type: "output", stream, line }));
        else if (stream === "stdout") print.out(terminalSafe(line));
        else print.err(terminalSafe(line));
      },
    });
}

if (import.meta.main) Deno.exitCode = await main(Deno.args);
