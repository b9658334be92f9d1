#!/usr/bin/env -S deno run --allow-net --allow-env=AMQP_URL,AMQP_CA_FILE --allow-read
/**
 * The producer: sends one task to the durable task queue and exits 0 only after the broker has
 * confirmed it, so a task reported as sent is on disk in the queue.
 *
 * ```sh
 * deno task send First message.          # one task; each dot is a second of work
 * deno task send                         # sends "Hello World!"
 * deno task send --queue reports Build.  # another queue
 * ```
 *
 * Exit codes: 0 sent and confirmed, 1 not sent (broker unreachable, refused, no confirm),
 * 2 bad arguments.
 *
 * @module
 */

import { connect, readCaFile, validateQueueName } from "./lib/amqp.ts";
import { EXIT, runCommand } from "./lib/cli.ts";
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
import { TaskPublisher } from "./lib/publisher.ts";
import { parseAmqpUrl } from "./lib/url.ts";
import { UsageError } from "./lib/errors.ts";

/** The producer's command line. */
export const NEW_TASK_COMMAND: CommandSpec = {
  usage: "deno task send [OPTIONS] [MESSAGE...]",
  summary: 'Send a task (the words of MESSAGE, or "Hello World!") to the task queue.',
  flags: [
    URL_FLAG,
    QUEUE_FLAG,
    {
      name: "confirm-timeout",
      kind: "string",
      valueName: "MS",
      default: "30000",
      description: "How long to wait for the broker to confirm the task before failing.",
    },
    HEARTBEAT_FLAG,
    CA_FLAG,
    HELP_FLAG,
  ],
};

interface NewTaskConfig {
  url: string;
  queue: string;
  message: string;
  confirmTimeout: number;
  heartbeat: number;
  ca: string | undefined;
}

/** Runs the producer with command-line `args`; resolves with the exit code. */
export function main(args: string[]): Promise<number> {
  return runCommand<NewTaskConfig>(NEW_TASK_COMMAND, args, {
    allowPositionals: true,
    configure({ values, positionals }) {
      const url = requireString("url", values.url);
      parseAmqpUrl(url);
      const queue = requireString("queue", values.queue);
      validateQueueName(queue);
      return {
        url,
        queue,
        message: taskMessage(positionals),
        confirmTimeout: parseInteger("confirm-timeout", values["confirm-timeout"], { min: 1 }),
        heartbeat: parseInteger("heartbeat", values.heartbeat, { min: 0, max: 3600 }),
        ca: typeof values.ca === "string" ? readCaFile(values.ca) : undefined,
      };
    },
    async run(config) {
      const connection = await connect(config.url, {
        heartbeat: config.heartbeat,
        ...(config.ca === undefined ? {} : { ca: config.ca }),
      });
      try {
        let toldBlocked = false;
        const publisher = await TaskPublisher.open(connection, config.queue, {
          onWarning: (line) => console.error(line),
          onBlocked: (reason) => {
            if (toldBlocked) return;
            toldBlocked = true;
            console.error(`The broker is blocking publishers (${reason}); waiting until it stops`);
          },
        });
        await publisher.publish(config.message, { confirmTimeout: config.confirmTimeout });
        console.log(` [x] Sent '${config.message}'`);
      } finally {
        await connection.close().catch(() => {});
      }
      return EXIT.ok;
    },
  });
}

/** The task body: the words joined by spaces, or the tutorial's "Hello World!" for none. */
export function taskMessage(words: readonly string[]): string {
  if (words.length === 0) return "Hello World!";
  const message = words.join(" ");
  if (message.trim() === "") throw new UsageError("Empty message: nothing to send");
  return message;
}

if (import.meta.main) Deno.exitCode = await main(Deno.args);
