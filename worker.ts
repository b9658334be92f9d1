#!/usr/bin/env -S deno run --allow-net --allow-env=AMQP_URL,AMQP_CA_FILE --allow-read
/**
 * The worker: takes tasks from the durable task queue one at a time (fair dispatch), does the
 * work (a second per dot in the body, as in the tutorial), and acks each task only once it is
 * done, so a task whose worker dies goes to another worker.
 *
 * ```sh
 * deno task worker                       # run as many as you like, in separate shells
 * deno task worker --prefetch 10         # let the broker hand this worker 10 tasks at a time
 * deno task worker --dot-ms 100          # 0.1 s of work per dot
 * ```
 *
 * Ctrl+C (SIGINT) or SIGTERM: stop taking tasks, finish and ack the ones in hand, exit 0.
 * A second signal, or the shutdown timeout passing, exits at once with 130; the broker then
 * redelivers whatever was not acked.
 *
 * Exit codes: 0 stopped by a signal, 1 runtime failure (broker unreachable or lost), 2 bad
 * arguments, 130 stopped without finishing the tasks in hand.
 *
 * @module
 */

import { readCaFile, validateQueueName } from "./lib/amqp.ts";
import { EXIT, runCommand } from "./lib/cli.ts";
import { runWorker, type WorkerEvent } from "./lib/consumer.ts";
import { fakeWork } from "./lib/fake_work.ts";
import {
  CA_FLAG,
  type CommandSpec,
  HEARTBEAT_FLAG,
  HELP_FLAG,
  parseInteger,
  QUEUE_FLAG,
  requireString,
  URL_FLAG,
} from "./lib/flags.ts";
import { onShutdownSignal } from "./lib/shutdown.ts";
import { parseAmqpUrl } from "./lib/url.ts";

/** The worker's command line. */
export const WORKER_COMMAND: CommandSpec = {
  usage: "deno task worker [OPTIONS]",
  summary: "Take tasks from the task queue and do them, acking each when it is done.",
  flags: [
    URL_FLAG,
    QUEUE_FLAG,
    {
      name: "prefetch",
      kind: "string",
      valueName: "N",
      default: "1",
      description: "Unacked tasks the broker may hand this worker at once (1 = fair dispatch).",
    },
    {
      name: "dot-ms",
      kind: "string",
      valueName: "MS",
      default: "1000",
      description: "Milliseconds of pretend work per dot in a task's body.",
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
  prefetch: number;
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
      parseAmqpUrl(url);
      const queue = requireString("queue", values.queue);
      validateQueueName(queue);
      return {
        url,
        queue,
        prefetch: parseInteger("prefetch", values.prefetch, { min: 1, max: 65535 }),
        dotMs: parseInteger("dot-ms", values["dot-ms"], { min: 0 }),
        shutdownTimeout: parseInteger("shutdown-timeout", values["shutdown-timeout"], { min: 0 }),
        heartbeat: parseInteger("heartbeat", values.heartbeat, { min: 0, max: 3600 }),
        ca: typeof values.ca === "string" ? readCaFile(values.ca) : undefined,
      };
    },
    async run(config) {
      const stop = new AbortController();
      using _signals = onShutdownSignal({
        onFirst: () => stop.abort(),
        timeout: config.shutdownTimeout,
        onForced: (why) => {
          console.error(`${why}: exiting now; the broker will redeliver unacked tasks`);
          Deno.exit(EXIT.interrupted);
        },
      });
      await runWorker(config.url, async (task) => {
        const body = task.body.toString();
        console.log(` [x] Received '${body}'`);
        await fakeWork(body, { dotMs: config.dotMs });
        console.log(" [x] Done");
      }, {
        queue: config.queue,
        prefetch: config.prefetch,
        heartbeat: config.heartbeat,
        ...(config.ca === undefined ? {} : { ca: config.ca }),
        signal: stop.signal,
        onReady: () => console.log(" [*] Waiting for messages. To exit press CTRL+C"),
        onEvent: (event) => console.error(describeEvent(event)),
      });
      return EXIT.ok;
    },
  });
}

/** The log line for a worker event. */
export function describeEvent(event: WorkerEvent): string {
  switch (event.type) {
    case "warning":
      return event.message;
    case "connection_lost":
      return `Lost the connection to the broker (${event.reason}); reconnecting`;
    case "reconnecting":
      return `Reconnecting (attempt ${event.attempt}) in ${event.delay} ms: ${event.reason}`;
    case "reconnected":
      return "Reconnected; consuming again";
    case "channel_lost":
      return `The broker closed the channel (${event.reason}); opening a new one`;
    case "consumer_cancelled":
      return "The broker cancelled the consumer (queue deleted?); declaring the queue again";
    case "stale_delivery":
      return `Task ${event.id} finished after its channel was lost; the broker will redeliver it`;
  }
}

if (import.meta.main) Deno.exitCode = await main(Deno.args);
