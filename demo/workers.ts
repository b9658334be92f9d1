/**
 * The demo's processes: workers run from worker.ts and followed through their tutorial lines,
 * tasks sent with new_task.ts, waits bounded by deadlines, and the graceful stop.
 *
 * @module
 */

import { setTimeout as sleep } from "node:timers/promises";
import { EXIT } from "../lib/cli/cli.ts";
import { formatSeconds } from "../lib/cli/duration.ts";
import { scriptPermissions, type ScriptProcess, spawnScript } from "../lib/io/script_process.ts";

/** Where the broker is and how to trust it. */
export interface BrokerAddress {
  /** The broker's URL; it reaches the scripts in `AMQP_URL`, never on a command line. */
  url: string;
  /** The CA file: its absolute path for the scripts, its PEM text for our own connections. */
  ca: { path: string; pem: string } | undefined;
}

/** A failure the demo explains in one line; `exitCode` is what the demo then exits with. */
export class DemoError extends Error {
  readonly exitCode: number;

  constructor(message: string, exitCode: number = EXIT.failure) {
    super(message);
    this.name = "DemoError";
    this.exitCode = exitCode;
  }
}

/** What a Ctrl+C ends the demo's waits with. */
export function interrupted(): DemoError {
  return new DemoError("Interrupted: stopping the workers", EXIT.interrupted);
}

/** Receives each line a process prints, already prefixed with its label. */
export type OnOutput = (stream: "stdout" | "stderr", line: string) => void;

/** Wakes whoever waits for output or an exit. */
export class Changes {
  #waiters = new Set<() => void>();

  /** Wakes every waiter. */
  notify(): void {
    for (const wake of this.#waiters) wake();
    this.#waiters.clear();
  }

  /** Resolves at the next {@linkcode Changes.notify}. */
  next(): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#waiters.add(resolve);
    return promise;
  }
}

/** Options for {@linkcode waitFor}. */
export interface WaitForOptions {
  /** Woken whenever a process prints or exits. */
  changes: Changes;
  /** Milliseconds before the wait fails. */
  timeout: number;
  /**
   * Aborting it (Ctrl+C) ends the wait with its reason.
   * @default {undefined}
   */
  signal?: AbortSignal | undefined;
}

/**
 * Waits until `check` returns true, checking again whenever a process prints or exits.
 *
 * @throws {DemoError} after `timeout` ms: `Timed out after 20 s waiting for <what>`.
 */
export async function waitFor(
  what: string,
  check: () => boolean,
  options: WaitForOptions,
): Promise<void> {
  const { changes, timeout, signal } = options;
  const deadline = Date.now() + timeout;
  while (!check()) {
    signal?.throwIfAborted();
    const left = deadline - Date.now();
    if (left <= 0) {
      throw new DemoError(`Timed out after ${formatSeconds(timeout)} waiting for ${what}`);
    }
    const timer = new AbortController();
    const wake = signal === undefined ? timer.signal : AbortSignal.any([timer.signal, signal]);
    await Promise.race([
      changes.next(),
      sleep(left, undefined, { signal: wake }).catch(() => {}),
    ]);
    timer.abort();
  }
}

/** Options for the demo's scripts: {@linkcode startWorker} and {@linkcode sendTasks}. */
export interface DemoScriptOptions {
  /** The broker the scripts use. */
  broker: BrokerAddress;
  /** Notified on every line a script prints and when it exits. */
  changes: Changes;
  /**
   * Receives each line the scripts print, prefixed with their label: `[worker 1] [x] Done`.
   * @default {() => {}}
   */
  onOutput?: OnOutput;
}

/** The permissions `script` runs with, from its shebang line. */
export async function permissionsOf(script: string): Promise<string[]> {
  try {
    return await scriptPermissions(script);
  } catch (error) {
    if (error instanceof TypeError) throw new DemoError(error.message);
    throw error;
  }
}

/**
 * Starts `script`. It runs in a process group of its own, so that a Ctrl+C in the terminal
 * reaches only the demo, which then stops it with exactly one SIGINT.
 */
function spawnLabelled(
  script: string,
  args: readonly string[],
  options: DemoScriptOptions & { label: string; permissions: readonly string[] },
  onLine: (line: string) => void = () => {},
): ScriptProcess {
  const { broker, changes, onOutput = () => {}, label, permissions } = options;
  const env: Record<string, string> = { AMQP_URL: broker.url };
  if (broker.ca !== undefined) env.AMQP_CA_FILE = broker.ca.path;
  return spawnScript(script, args, {
    permissions,
    env,
    detached: true,
    onStdout: (line) => {
      onOutput("stdout", `${label} ${line.trimStart()}`);
      onLine(line);
      changes.notify();
    },
    onStderr: (line) => onOutput("stderr", `${label} ${line.trimStart()}`),
    onExit: () => changes.notify(),
  });
}

/** One worker process and what it did, read from its tutorial lines. */
export class TaskWorker {
  readonly n: number;
  readonly process: ScriptProcess;
  /** It printed `[*] Waiting for messages`. */
  ready = false;
  /** The tasks it finished, in order. */
  readonly done: string[] = [];
  #current: string | undefined;

  /** Starts worker `n` from worker.ts with `args`, following its lines. */
  constructor(
    n: number,
    args: readonly string[],
    options: DemoScriptOptions & { permissions: readonly string[] },
  ) {
    this.n = n;
    this.process = spawnLabelled(
      "worker.ts",
      args,
      { ...options, label: `[worker ${n}]` },
      (line) => this.#follow(line),
    );
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

/** @throws {DemoError} when a worker has exited, `when` saying at which point. */
export function checkRunning(workers: readonly TaskWorker[], when: string): void {
  const gone = workers.find((worker) => worker.process.status !== undefined);
  if (gone) throw new DemoError(`${gone.label} ${gone.process.describeExit()} ${when}`);
}

/** Options for {@linkcode sendTasks}. */
export interface SendTasksOptions extends DemoScriptOptions {
  /** The queue the tasks go to. */
  queue: string;
  /**
   * Aborting it (Ctrl+C) sends no further task; a send under way still completes.
   * @default {undefined}
   */
  signal?: AbortSignal | undefined;
}

/**
 * Sends each task with its own run of new_task.ts, the real producer, one after the other.
 *
 * @throws {DemoError} when new_task.ts fails or takes longer than 40 s.
 */
export async function sendTasks(
  tasks: readonly string[],
  options: SendTasksOptions,
): Promise<void> {
  const { queue, signal, changes } = options;
  const permissions = await permissionsOf("new_task.ts");
  for (const task of tasks) {
    signal?.throwIfAborted();
    const producer = spawnLabelled("new_task.ts", ["--queue", queue, task], {
      ...options,
      label: "[new_task]",
      permissions,
    });
    // Not cut short by Ctrl+C: a send completes or fails, it is never left half done.
    try {
      await waitFor(`new_task.ts to send '${task}'`, () => producer.status !== undefined, {
        changes,
        timeout: 40_000,
      });
    } catch (error) {
      producer.kill("SIGKILL");
      await producer.finished;
      throw error;
    }
    if (producer.status?.code !== 0) {
      throw new DemoError(`new_task.ts ${producer.describeExit()} sending '${task}'`);
    }
  }
}

/** Options for {@linkcode stopWorkers}. */
export interface StopWorkersOptions {
  /** Notified when a worker exits. */
  changes: Changes;
  /** Milliseconds the workers may take to stop before they are killed. */
  timeout: number;
  /**
   * Receives a line for each worker that stopped: `worker 1 exited with code 0.`.
   * @default {() => {}}
   */
  onOutput?: OnOutput;
}

/**
 * Stops every worker with one SIGINT and waits for them to exit; kills those that do not.
 *
 * @throws {DemoError} when they do not stop in time, or a worker exits with another code than 0.
 */
export async function stopWorkers(
  workers: readonly TaskWorker[],
  options: StopWorkersOptions,
): Promise<void> {
  const { changes, timeout, onOutput = () => {} } = options;
  for (const worker of workers) worker.process.kill("SIGINT");
  try {
    await waitFor(
      "the workers to stop",
      () => workers.every((worker) => worker.process.status !== undefined),
      { changes, timeout },
    );
  } catch (error) {
    for (const worker of workers) worker.process.kill("SIGKILL");
    await Promise.all(workers.map((worker) => worker.process.finished));
    throw error;
  }
  for (const worker of workers) {
    onOutput("stdout", `${worker.label} ${worker.process.describeExit()}.`);
  }
  const failed = workers.find((worker) => worker.process.status?.code !== 0);
  if (failed) {
    throw new DemoError(`${failed.label} ${failed.process.describeExit()} when stopped`);
  }
}
