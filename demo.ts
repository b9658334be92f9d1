#!/usr/bin/env -S deno run --allow-net --allow-env=AMQP_URL,AMQP_CA_FILE --allow-run --allow-read
/**
 * The tutorial in one command: makes sure a broker answers (starting one with Docker Compose or
 * `rabbitmq-server` if none does), starts two workers, sends the tutorial's five tasks with the
 * real producer, shows which worker did which task, stops the workers gracefully and shows the
 * queue empty.
 *
 * ```sh
 * deno task demo                  # a second of work per dot, as in the tutorial
 * deno task demo --dot-ms 100     # ten times faster
 * ```
 *
 * The workers and the producer are `worker.ts` and `new_task.ts`, each run as its own process
 * with the permissions of its shebang line; the broker address reaches them in `AMQP_URL`, never
 * on a command line. Ctrl+C stops the workers gracefully; a second Ctrl+C kills them.
 *
 * Exit codes: 0 all five tasks done and the workers stopped cleanly, 1 something failed (no
 * broker, a worker or the producer failed, a deadline passed), 2 bad arguments, 130 interrupted.
 *
 * @module
 */

import { resolve } from "node:path";
import { readCaFile } from "./lib/broker/connection.ts";
import { TaskQueue } from "./lib/topology/task_queue.ts";
import { ensureBroker } from "./demo/broker_setup.ts";
import { EXIT, runCommand } from "./lib/cli/cli.ts";
import {
  type BrokerAddress,
  Changes,
  checkRunning,
  DemoError,
  interrupted,
  permissionsOf,
  sendTasks,
  stopWorkers,
  TaskWorker,
  waitFor,
} from "./demo/workers.ts";
import { formatSeconds } from "./lib/cli/duration.ts";
import { AmqpError, describeError } from "./lib/broker/errors.ts";
import { workDuration } from "./lib/handlers/fake_work.ts";
import {
  badInput,
  CA_FLAG,
  type CommandSpec,
  type FlagSpec,
  HELP_FLAG,
  parseInteger,
  QUEUE_FLAG,
  requireString,
  URL_FLAG,
} from "./lib/cli/flags.ts";
import { countReady, inspectTaskQueue } from "./demo/queue_check.ts";
import { onShutdownSignal } from "./lib/cli/shutdown.ts";
import { parseAmqpUrl } from "./lib/broker/url.ts";
import { WORKER_COMMAND } from "./worker.ts";

/** The tutorial's five tasks; each dot is a unit of pretend work. */
export const TASKS: readonly string[] = [
  "First message.",
  "Second message..",
  "Third message...",
  "Fourth message....",
  "Fifth message.....",
];

/** How many workers share the tasks. */
const WORKER_COUNT = 2;

/** The demo passes `--dot-ms` on to the workers, so it is the workers' own flag. */
function workerFlag(name: string): FlagSpec {
  const flag = WORKER_COMMAND.flags.find((spec) => spec.name === name);
  if (flag === undefined) throw new Error(`worker.ts has no --${name} flag`);
  return flag;
}

/** The demo's command line. */
export const DEMO_COMMAND: CommandSpec = {
  usage: "deno task demo [OPTIONS]",
  summary:
    "Start a broker if none answers, run two workers, send them the tutorial's five tasks, and show who did what.",
  flags: [URL_FLAG, QUEUE_FLAG, workerFlag("dot-ms"), CA_FLAG, HELP_FLAG],
};

interface DemoConfig {
  broker: BrokerAddress;
  queue: string;
  dotMs: number;
}

/** Runs the demo with command-line `args`; resolves with the exit code. */
export function main(args: string[]): Promise<number> {
  return runCommand<DemoConfig>(DEMO_COMMAND, args, {
    configure({ values }) {
      const url = requireString("url", values.url);
      badInput(() => parseAmqpUrl(url));
      const queue = requireString("queue", values.queue);
      badInput(() => new TaskQueue(queue));
      const dotMs = parseInteger("dot-ms", values["dot-ms"], { min: 0, max: 60_000 });
      const ca = typeof values.ca === "string"
        ? { path: resolve(values.ca), pem: badInput(() => readCaFile(values.ca as string)) }
        : undefined;
      return { broker: { url, ca }, queue, dotMs };
    },
    run: runDemo,
  });
}

/** Prints what the scripts print, each line on the stream it came on. */
function print(stream: "stdout" | "stderr", line: string): void {
  if (stream === "stdout") console.log(line);
  else console.error(line);
}

async function runDemo(config: DemoConfig): Promise<number> {
  const { broker, queue, dotMs } = config;
  const changes = new Changes();
  const interrupt = new AbortController();
  const workers: TaskWorker[] = [];
  const scripts = { broker, changes, onOutput: print };
  // The longest task, plus time for the processes to stop.
  const stopTimeout = Math.max(...TASKS.map((task) => workDuration(task, dotMs))) + 10_000;
  const forceTimeout = stopTimeout + 20_000;
  // SIGHUP too: the workers run in process groups of their own and would not hear a closed
  // terminal, so the demo stops them.
  using _signals = onShutdownSignal({
    signals: ["SIGINT", "SIGTERM", "SIGHUP"],
    onFirst: () => interrupt.abort(interrupted()),
    timeout: forceTimeout,
    onForced: (why, signal) => {
      const reason = signal === undefined
        ? `Stopping took longer than ${formatSeconds(forceTimeout)}`
        : why;
      console.error(`${reason}: killing the workers; the broker will redeliver unacked tasks`);
      for (const worker of workers) worker.process.kill("SIGKILL");
      Deno.exit(EXIT.interrupted);
    },
  });

  let failure: DemoError | undefined;
  /** Reports an expected failure at once; the first one decides the exit code. */
  const fail = (error: unknown): number => {
    const known = error instanceof AmqpError ? new DemoError(describeError(error)) : error;
    if (!(known instanceof DemoError)) throw error;
    console.error(known.message);
    failure ??= known;
    return failure.exitCode;
  };

  console.log(
    `RabbitMQ "Work Queues" demo: ${WORKER_COUNT} workers share ${TASKS.length} tasks; ` +
      `each dot in a task is ${dotMs} ms of work.`,
  );
  let waiting: number;
  try {
    await ensureBroker(broker.url, {
      ca: broker.ca?.pem,
      signal: interrupt.signal,
      onProgress: (line) => console.log(line),
      showOutput: true,
    });
    waiting = await announceQueue(broker, queue);
  } catch (error) {
    return fail(error);
  }

  try {
    const workerArgs = ["--queue", queue, "--dot-ms", String(dotMs)];
    console.log(`Starting ${WORKER_COUNT} workers: worker.ts ${workerArgs.join(" ")}`);
    const permissions = await permissionsOf("worker.ts");
    for (let n = 1; n <= WORKER_COUNT; n++) {
      workers.push(new TaskWorker(n, workerArgs, { ...scripts, permissions }));
    }
    await waitFor("the workers to start", () => {
      checkRunning(workers, "before consuming");
      return workers.every((worker) => worker.ready);
    }, { changes, timeout: 20_000, signal: interrupt.signal });

    console.log(`Sending ${TASKS.length} tasks, each with its own run of new_task.ts:`);
    await sendTasks(TASKS, { ...scripts, queue, signal: interrupt.signal });

    console.log(`Waiting for the workers to finish all ${TASKS.length} tasks...`);
    // Time for every task done one after the other, and some to spare.
    const workTimeout = TASKS.reduce((sum, task) => sum + workDuration(task, dotMs), 30_000);
    await waitFor(`all ${TASKS.length} tasks to be done`, () => {
      checkRunning(workers, "before all tasks were done");
      // The queue is first in, first out: once as many tasks are done as were waiting plus
      // ours, ours are among them.
      const done = workers.flatMap((worker) => worker.done);
      return done.length >= waiting + TASKS.length && TASKS.every((task) => done.includes(task));
    }, { changes, timeout: workTimeout, signal: interrupt.signal });
    console.log(
      `All ${TASKS.length} tasks done. Stopping the workers with SIGINT ` +
        `(each finishes the task in hand, then exits 0)...`,
    );
  } catch (error) {
    fail(error);
  } finally {
    if (workers.length > 0) {
      await stopWorkers(workers, { changes, timeout: stopTimeout, onOutput: print }).catch(fail);
    }
  }

  if (workers.length > 0) {
    console.log("Who did what:");
    for (const worker of workers) console.log(`  ${worker.summary()}`);
  }
  await showQueue(broker, queue).catch(fail);
  return failure?.exitCode ?? EXIT.ok;
}

/**
 * Declares the queue as the workers will, says whether old tasks wait in it, and resolves with
 * their number.
 *
 * @throws {DemoError} when other programs consume the queue: they would take some of the tasks.
 */
async function announceQueue(broker: BrokerAddress, queue: string): Promise<number> {
  const info = await inspectTaskQueue(broker.url, queue, {
    ca: broker.ca?.pem,
    onWarning: (line) => console.error(line),
  });
  if (info.consumerCount > 0) {
    throw new DemoError(
      `Queue "${queue}" already has ${info.consumerCount} consumer(s), workers running ` +
        `elsewhere, which would take some of the demo's tasks: stop them, or pass --queue demo`,
    );
  }
  if (info.messageCount > 0) {
    console.log(
      `Queue "${queue}" already holds ${info.messageCount} task(s); the workers will do those too.`,
    );
  }
  return info.messageCount;
}

/** The last line: the queue's ready count, from a passive declare. */
async function showQueue(broker: BrokerAddress, queue: string): Promise<void> {
  const ready = await countReady(broker.url, queue, { ca: broker.ca?.pem });
  const note = ready === 0
    ? ""
    : ` (sent while the demo ran, or given back by a worker; "deno task worker" does them)`;
  console.log(`Queue "${queue}": ${ready} ready${note}`);
}

if (import.meta.main) Deno.exitCode = await main(Deno.args);
