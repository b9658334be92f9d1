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
import { setTimeout as sleep } from "node:timers/promises";
import { connect, openTaskChannel, readCaFile, validateQueueName } from "./lib/amqp.ts";
import { EXIT, runCommand } from "./lib/cli.ts";
import { AmqpError, brokerReason, describeError } from "./lib/errors.ts";
import { workDuration } from "./lib/fake_work.ts";
import {
  CA_FLAG,
  type CommandSpec,
  type FlagSpec,
  HELP_FLAG,
  parseInteger,
  QUEUE_FLAG,
  requireString,
  URL_FLAG,
} from "./lib/flags.ts";
import { displayUrl, parseAmqpUrl } from "./lib/url.ts";
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

/** Where the broker is and how to trust it. */
interface BrokerAddress {
  url: string;
  /** The CA file: its absolute path for the scripts, its PEM text for our own connections. */
  ca: { path: string; pem: string } | undefined;
}

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
      parseAmqpUrl(url);
      const queue = requireString("queue", values.queue);
      validateQueueName(queue);
      const dotMs = parseInteger("dot-ms", values["dot-ms"], { min: 0, max: 60_000 });
      const ca = typeof values.ca === "string"
        ? { path: resolve(values.ca), pem: readCaFile(values.ca) }
        : undefined;
      return { broker: { url, ca }, queue, dotMs };
    },
    run: runDemo,
  });
}

/** A failure the demo explains in one line; `exitCode` is what the demo then exits with. */
class DemoError extends Error {
  readonly exitCode: number;

  constructor(message: string, exitCode: number = EXIT.failure) {
    super(message);
    this.name = "DemoError";
    this.exitCode = exitCode;
  }
}

function interrupted(): DemoError {
  return new DemoError("Interrupted: stopping the workers", EXIT.interrupted);
}

const ROOT = new URL("./", import.meta.url);

/** Seconds, for messages. */
function seconds(ms: number): string {
  return `${Math.round(ms / 100) / 10} s`;
}

async function runDemo(config: DemoConfig): Promise<number> {
  const { broker, queue, dotMs } = config;
  const changes = new Changes();
  const interrupt = new AbortController();
  const workers: TaskWorker[] = [];
  // The longest task, plus time for the processes to stop.
  const stopTimeout = Math.max(...TASKS.map((task) => workDuration(task, dotMs))) + 10_000;
  using _signals = onStopSignal({
    onFirst: () => {
      interrupt.abort();
      changes.notify();
    },
    timeout: stopTimeout + 20_000,
    onForced: (why) => {
      console.error(`${why}: killing the workers; the broker will redeliver unacked tasks`);
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
    await ensureBroker(broker, interrupt.signal);
    waiting = await announceQueue(broker, queue);
  } catch (error) {
    return fail(error);
  }

  try {
    const workerArgs = ["--queue", queue, "--dot-ms", String(dotMs)];
    console.log(`Starting ${WORKER_COUNT} workers: worker.ts ${workerArgs.join(" ")}`);
    const permissions = await scriptPermissions("worker.ts");
    for (let n = 1; n <= WORKER_COUNT; n++) {
      const label = `[worker ${n}]`;
      workers.push(
        new TaskWorker(
          n,
          changes,
          (onLine, onExit) =>
            spawnScript("worker.ts", permissions, workerArgs, broker, label, onLine, onExit),
        ),
      );
    }
    await waitFor("the workers to start", 20_000, changes, interrupt.signal, () => {
      checkRunning(workers, "before consuming");
      return workers.every((worker) => worker.ready);
    });

    console.log(`Sending ${TASKS.length} tasks, each with its own run of new_task.ts:`);
    const producerPermissions = await scriptPermissions("new_task.ts");
    for (const task of TASKS) {
      if (interrupt.signal.aborted) throw interrupted();
      await sendTask(task, queue, broker, producerPermissions, changes);
    }

    console.log(`Waiting for the workers to finish all ${TASKS.length} tasks...`);
    // Time for every task done one after the other, and some to spare.
    const workTimeout = TASKS.reduce((sum, task) => sum + workDuration(task, dotMs), 30_000);
    await waitFor(
      `all ${TASKS.length} tasks to be done`,
      workTimeout,
      changes,
      interrupt.signal,
      () => {
        checkRunning(workers, "before all tasks were done");
        // The queue is first in, first out: once as many tasks are done as were waiting plus
        // ours, ours are among them.
        const done = workers.flatMap((worker) => worker.done);
        return done.length >= waiting + TASKS.length && TASKS.every((task) => done.includes(task));
      },
    );
    console.log(
      `All ${TASKS.length} tasks done. Stopping the workers with SIGINT ` +
        `(each finishes the task in hand, then exits 0)...`,
    );
  } catch (error) {
    fail(error);
  } finally {
    if (workers.length > 0) await stopWorkers(workers, stopTimeout, changes).catch(fail);
  }

  if (workers.length > 0) {
    console.log("Who did what:");
    for (const worker of workers) console.log(`  ${worker.summary()}`);
  }
  await showQueue(broker, queue).catch(fail);
  return failure?.exitCode ?? EXIT.ok;
}

// ---------------------------------------------------------------------------------------------
// Signals

/** Options for {@linkcode onStopSignal}. */
interface StopSignalOptions {
  /** Called on the first SIGINT, SIGTERM or SIGHUP. */
  onFirst: () => void;
  /** Called on a later signal, or when `timeout` ms have passed since the first. */
  onForced: (why: string) => void;
  /** Milliseconds the stop may take. */
  timeout: number;
}

/**
 * `deno task` passes the terminal's SIGINT on to the process the terminal already sent it to, so
 * one Ctrl+C can arrive twice; a repeat this soon after the first signal is that same Ctrl+C.
 */
const SAME_SIGNAL_MS = 500;

/**
 * One handler for SIGINT, SIGTERM and SIGHUP. SIGHUP too, because the workers run in a process
 * group of their own and would not hear a closed terminal; the demo stops them instead. Unlike
 * lib/shutdown.ts, a repeat within {@linkcode SAME_SIGNAL_MS} does not count as a second signal.
 */
function onStopSignal(options: StopSignalOptions): Disposable {
  const { onFirst, onForced, timeout } = options;
  let first: number | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM", "SIGHUP"];
  const listeners = signals.map((signal) => {
    const listener = () => {
      if (first === undefined) {
        first = Date.now();
        timer = setTimeout(
          () => onForced(`Stopping took longer than ${seconds(timeout)}`),
          timeout,
        );
        onFirst();
      } else if (Date.now() - first > SAME_SIGNAL_MS) {
        onForced(`Second ${signal}`);
      }
    };
    Deno.addSignalListener(signal, listener);
    return [signal, listener] as const;
  });
  return {
    [Symbol.dispose]() {
      clearTimeout(timer);
      for (const [signal, listener] of listeners) Deno.removeSignalListener(signal, listener);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The broker

/**
 * Makes sure a broker answers. When nothing listens at the default local address, starts one:
 * with Docker Compose if a Docker engine runs, else with a local `rabbitmq-server`.
 */
async function ensureBroker(broker: BrokerAddress, signal: AbortSignal): Promise<void> {
  const where = displayUrl(broker.url);
  const first = await probeBroker(broker);
  if (first === undefined) {
    console.log(`Broker: ${where} answers.`);
    return;
  }
  // Anything but "nothing listens" (a wrong password, an unknown host) is not fixed by starting
  // a broker; neither is a broker missing elsewhere than where ours would listen.
  if (first.code !== "ECONNREFUSED") throw first;
  if (!isDefaultLocal(broker.url)) {
    throw new DemoError(
      `${describeError(first)}; the demo starts a broker only at amqp://localhost:5672`,
    );
  }
  let code: number;
  if (await dockerEngineRuns()) {
    code = await runTool("docker", ["compose", "up", "-d", "--wait"], {
      timeout: 300_000,
      announce: `No broker answers at ${where}; starting one with: docker compose up -d --wait`,
    });
  } else {
    try {
      code = await runTool("rabbitmq-server", ["-detached"], {
        timeout: 30_000,
        announce: `No broker answers at ${where}; starting one with: rabbitmq-server -detached`,
      });
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      throw new DemoError(
        `No broker answers at "${where}", and neither a Docker engine nor rabbitmq-server is ` +
          `there to start one: start Docker (the demo then runs "docker compose up -d --wait"), ` +
          `install RabbitMQ (https://www.rabbitmq.com/docs/download), or pass --url`,
      );
    }
  }
  if (code !== 0) {
    throw new DemoError(`Starting the broker failed (exit code ${code}); see the output above`);
  }
  console.log("Waiting for the broker to accept connections...");
  await waitForBroker(broker, 60_000, signal);
  console.log(`Broker: ${where} answers.`);
}

function connectOptions(broker: BrokerAddress) {
  return broker.ca === undefined ? {} : { ca: broker.ca.pem };
}

/** Connects once; resolves with the failure, or undefined when the broker answers. */
async function probeBroker(broker: BrokerAddress): Promise<AmqpError | undefined> {
  try {
    const connection = await connect(broker.url, {
      ...connectOptions(broker),
      heartbeat: 0,
      timeout: 5_000,
      attempts: 1,
    });
    await connection.close().catch(() => {});
    return undefined;
  } catch (error) {
    if (error instanceof AmqpError) return error;
    throw error;
  }
}

/** The port opens before the broker accepts connections, so this waits for a real handshake. */
async function waitForBroker(
  broker: BrokerAddress,
  timeout: number,
  signal: AbortSignal,
): Promise<void> {
  const deadline = Date.now() + timeout;
  while (true) {
    const error = await probeBroker(broker);
    if (error === undefined) return;
    if (Date.now() >= deadline) {
      throw new DemoError(
        `The broker did not accept connections within ${seconds(timeout)}: ${describeError(error)}`,
      );
    }
    if (signal.aborted) throw interrupted();
    await sleep(1_000, undefined, { signal }).catch(() => {});
  }
}

function isDefaultLocal(url: string): boolean {
  const parsed = parseAmqpUrl(url);
  const local = ["localhost", "127.0.0.1", "[::1]"].includes(parsed.hostname);
  return parsed.protocol === "amqp:" && local && (parsed.port === "" || parsed.port === "5672");
}

async function dockerEngineRuns(): Promise<boolean> {
  try {
    return await runTool("docker", ["info"], { timeout: 15_000 }) === 0;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/**
 * Runs a command in the repository root (where compose.yaml is) and resolves with its exit code.
 * Its output goes to the terminal after `announce`, or nowhere without it; never into a pipe,
 * which a daemon it starts could hold open. Killed after `timeout` ms.
 *
 * @throws {Deno.errors.NotFound} when there is no such command.
 */
async function runTool(
  command: string,
  args: string[],
  options: { timeout: number; announce?: string },
): Promise<number> {
  const { timeout, announce } = options;
  const output = announce === undefined ? "null" : "inherit";
  const child = new Deno.Command(command, {
    args,
    cwd: ROOT,
    stdin: "null",
    stdout: output,
    stderr: output,
    signal: AbortSignal.timeout(timeout),
  }).spawn();
  if (announce !== undefined) console.log(announce);
  const status = await child.status;
  if (status.signal !== null) {
    throw new DemoError(`"${command} ${args.join(" ")}" did not finish within ${seconds(timeout)}`);
  }
  return status.code;
}

/**
 * Declares the queue as the workers will, says whether old tasks wait in it, and resolves with
 * their number.
 *
 * @throws {DemoError} when other programs consume the queue: they would take some of the tasks.
 */
async function announceQueue(broker: BrokerAddress, queue: string): Promise<number> {
  const connection = await connect(broker.url, connectOptions(broker));
  try {
    const { channel, info } = await openTaskChannel(connection, queue, {
      onWarning: (line) => console.error(line),
    });
    await channel.close().catch(() => {});
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
  } finally {
    await connection.close().catch(() => {});
  }
}

/** The last line: the queue's ready count, from a passive declare. */
async function showQueue(broker: BrokerAddress, queue: string): Promise<void> {
  const connection = await connect(broker.url, connectOptions(broker));
  try {
    const channel = await connection.createChannel();
    channel.on("error", () => {});
    let ready: number;
    try {
      ready = (await channel.checkQueue(queue)).messageCount;
    } catch (error) {
      throw new DemoError(`Cannot check queue "${queue}": ${brokerReason(error)}`);
    } finally {
      await channel.close().catch(() => {});
    }
    const note = ready === 0
      ? ""
      : ` (sent while the demo ran, or given back by a worker; "deno task worker" does them)`;
    console.log(`Queue "${queue}": ${ready} ready${note}`);
  } finally {
    await connection.close().catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------------
// The workers and the producer, as processes

/** Wakes whoever waits for output or an exit. */
class Changes {
  #waiters = new Set<() => void>();

  notify(): void {
    for (const wake of this.#waiters) wake();
    this.#waiters.clear();
  }

  next(): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#waiters.add(resolve);
    return promise;
  }
}

/** A script running as its own process, its output printed with a prefix as it comes. */
class ScriptProcess {
  /** The exit status, once the process has exited and its output has been read. */
  status: Deno.CommandStatus | undefined;
  /** Resolves with {@linkcode status}. */
  readonly finished: Promise<Deno.CommandStatus>;
  #child: Deno.ChildProcess;

  /** Prints each line as `label line`; calls `onLine` for stdout lines, `onExit` at the end. */
  constructor(
    label: string,
    child: Deno.ChildProcess,
    onLine: (line: string) => void,
    onExit: () => void,
  ) {
    this.#child = child;
    this.finished = Promise.all([
      readLines(child.stdout, (line) => {
        console.log(`${label} ${line.trimStart()}`);
        onLine(line);
      }),
      readLines(child.stderr, (line) => console.error(`${label} ${line.trimStart()}`)),
      child.status,
    ]).then(([, , status]) => {
      this.status = status;
      onExit();
      return status;
    });
  }

  /** Sends `signal` unless the process has exited. */
  kill(signal: Deno.Signal): void {
    if (this.status !== undefined) return;
    try {
      this.#child.kill(signal);
    } catch {
      // It exited meanwhile.
    }
  }

  /** How it exited, for messages. */
  describeExit(): string {
    const status = this.status;
    if (status === undefined) return "is still running";
    return status.signal === null
      ? `exited with code ${status.code}`
      : `was killed by ${status.signal}`;
  }
}

async function readLines(
  stream: ReadableStream<Uint8Array>,
  each: (line: string) => void,
): Promise<void> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    const lines = (rest + chunk).split("\n");
    rest = lines.pop() ?? "";
    for (const line of lines) each(line);
  }
  if (rest !== "") each(rest);
}

/** The permissions an entry script asks for in its shebang line: the ones it is run with. */
async function scriptPermissions(script: string): Promise<string[]> {
  const text = await Deno.readTextFile(new URL(script, ROOT));
  const match = /^#!\/usr\/bin\/env -S deno run (.*)$/.exec(text.split("\n", 1)[0] ?? "");
  if (!match?.[1]) throw new DemoError(`Cannot run ${script}: it has no "deno run" shebang line`);
  return match[1].trim().split(/\s+/);
}

/**
 * Starts `script` with Deno. It runs in a process group of its own, so that a Ctrl+C in the
 * terminal reaches only the demo, which then stops it with exactly one SIGINT.
 */
function spawnScript(
  script: string,
  permissions: string[],
  args: string[],
  broker: BrokerAddress,
  label: string,
  onLine: (line: string) => void = () => {},
  onExit: () => void = () => {},
): ScriptProcess {
  const env: Record<string, string> = { AMQP_URL: broker.url };
  if (broker.ca !== undefined) env.AMQP_CA_FILE = broker.ca.path;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...permissions, script, ...args],
    cwd: ROOT,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    detached: true,
  }).spawn();
  return new ScriptProcess(label, child, onLine, onExit);
}

/** One worker process and what it did, read from its tutorial lines. */
class TaskWorker {
  readonly n: number;
  readonly process: ScriptProcess;
  /** It printed `[*] Waiting for messages`. */
  ready = false;
  /** The tasks it finished, in order. */
  readonly done: string[] = [];
  #current: string | undefined;

  /** Starts the process with `spawn`, following its lines and waking `changes` on each. */
  constructor(
    n: number,
    changes: Changes,
    spawn: (onLine: (line: string) => void, onExit: () => void) => ScriptProcess,
  ) {
    this.n = n;
    this.process = spawn((line) => {
      this.#follow(line);
      changes.notify();
    }, () => changes.notify());
  }

  get label(): string {
    return `worker ${this.n}`;
  }

  #follow(line: string): void {
    const received = /^ \[x\] Received '(.*)'$/s.exec(line);
    if (received) {
      this.#current = received[1];
    } else if (/^ \[x\] Done$/.test(line) && this.#current !== undefined) {
      this.done.push(this.#current);
      this.#current = undefined;
    } else if (/^ \[\*\] Waiting for messages/.test(line)) {
      this.ready = true;
    }
  }

  /** `worker 1 did 3 tasks: 'First message.', 'Third message...', 'Fifth message.....'`. */
  summary(): string {
    if (this.done.length === 0) return `${this.label} did no tasks`;
    const tasks = this.done.map((task) => `'${task}'`).join(", ");
    const count = this.done.length === 1 ? "1 task" : `${this.done.length} tasks`;
    return `${this.label} did ${count}: ${tasks}`;
  }
}

function checkRunning(workers: readonly TaskWorker[], when: string): void {
  const gone = workers.find((worker) => worker.process.status !== undefined);
  if (gone) throw new DemoError(`${gone.label} ${gone.process.describeExit()} ${when}`);
}

/** Sends one task with new_task.ts, the real producer, and waits for it to exit 0. */
async function sendTask(
  task: string,
  queue: string,
  broker: BrokerAddress,
  permissions: string[],
  changes: Changes,
): Promise<void> {
  const args = ["--queue", queue, task];
  const producer = spawnScript(
    "new_task.ts",
    permissions,
    args,
    broker,
    "[new_task]",
    () => {},
    () => changes.notify(),
  );
  // Not cut short by Ctrl+C: a send completes or fails, it is never left half done.
  try {
    await waitFor(
      `new_task.ts to send '${task}'`,
      40_000,
      changes,
      undefined,
      () => producer.status !== undefined,
    );
  } catch (error) {
    producer.kill("SIGKILL");
    await producer.finished;
    throw error;
  }
  if (producer.status?.code !== 0) {
    throw new DemoError(`new_task.ts ${producer.describeExit()} sending '${task}'`);
  }
}

/** Stops every worker with one SIGINT and waits for them to exit; kills those that do not. */
async function stopWorkers(
  workers: readonly TaskWorker[],
  timeout: number,
  changes: Changes,
): Promise<void> {
  for (const worker of workers) worker.process.kill("SIGINT");
  try {
    await waitFor(
      "the workers to stop",
      timeout,
      changes,
      undefined,
      () => workers.every((worker) => worker.process.status !== undefined),
    );
  } catch (error) {
    for (const worker of workers) worker.process.kill("SIGKILL");
    await Promise.all(workers.map((worker) => worker.process.finished));
    throw error;
  }
  for (const worker of workers) console.log(`${worker.label} ${worker.process.describeExit()}.`);
  const failed = workers.find((worker) => worker.process.status?.code !== 0);
  if (failed) {
    throw new DemoError(`${failed.label} ${failed.process.describeExit()} when stopped`);
  }
}

/**
 * Waits until `check` returns true, checking again whenever a process prints or exits. Fails
 * after `timeout` ms, or when `signal` aborts (Ctrl+C).
 */
async function waitFor(
  what: string,
  timeout: number,
  changes: Changes,
  signal: AbortSignal | undefined,
  check: () => boolean,
): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!check()) {
    if (signal?.aborted) throw interrupted();
    const left = deadline - Date.now();
    if (left <= 0) throw new DemoError(`Timed out after ${seconds(timeout)} waiting for ${what}`);
    const timer = new AbortController();
    await Promise.race([
      changes.next(),
      sleep(left, undefined, { signal: timer.signal }).catch(() => {}),
    ]);
    timer.abort();
  }
}

if (import.meta.main) Deno.exitCode = await main(Deno.args);
