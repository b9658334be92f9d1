/**
 * Test helpers: the entry scripts as real processes, a real broker connection, queue names of
 * their own, and waits bounded by deadlines.
 *
 * Which broker the tests use, and how they reach it, comes from the environment:
 *
 * - `AMQP_URL`: the broker ({@linkcode BROKER_URL}, default `amqp://guest:guest@127.0.0.1:5672`).
 * - `TEST_RABBITMQCTL`: the command that runs `rabbitmqctl` against it, split on spaces
 *   ({@linkcode RABBITMQCTL}, default `rabbitmqctl`): `tools/rabbitmq4.sh ctl`, say, or
 *   `docker compose exec -T rabbitmq rabbitmqctl`.
 * - `TEST_MANAGEMENT_URL`: its management API, already enabled ({@linkcode MANAGEMENT_URL});
 *   without it the test of the API enables the local broker's plugin itself, on port 15672.
 * - `TEST_BROKER_LOCAL=0`: the broker does not run on this machine ({@linkcode BROKER_LOCAL}):
 *   tests that need its files, its node or its processes are skipped, saying why
 *   ({@linkcode onBrokerHost}).
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { setTimeout as sleep } from "node:timers/promises";
import type { RecoveringChannelModel } from "../lib/amqp.ts";
import { connect } from "../lib/broker/connection.ts";
import { ScriptProcess as LibScriptProcess } from "../lib/io/script_process.ts";
import { delayLevelNames } from "../lib/topology/delays.ts";

/** The broker the tests use. */
export const BROKER_URL = Deno.env.get("AMQP_URL") ?? "amqp://guest:guest@127.0.0.1:5672";

/** The command line that runs `rabbitmqctl` against the test broker. */
export const RABBITMQCTL: readonly string[] = (Deno.env.get("TEST_RABBITMQCTL") ?? "rabbitmqctl")
  .trim().split(/\s+/);

/** The test broker's management API when the environment names one (it is then already on). */
export const MANAGEMENT_URL: string | undefined = Deno.env.get("TEST_MANAGEMENT_URL") || undefined;

/** Whether the test broker runs on this machine, so that tests may use its files and node. */
export const BROKER_LOCAL = Deno.env.get("TEST_BROKER_LOCAL") !== "0";

/**
 * The name and `ignore` option of a test that needs the broker's own machine: skipped when
 * `TEST_BROKER_LOCAL=0`, with `reason` in its name.
 *
 * @example Usage
 * ```ts ignore
 * Deno.test(onBrokerHost("a TLS listener works", "the broker reads certificates from /tmp"), fn);
 * ```
 */
export function onBrokerHost(name: string, reason: string): { name: string; ignore: boolean } {
  return BROKER_LOCAL
    ? { name, ignore: false }
    : { name: `${name} [skipped, TEST_BROKER_LOCAL=0: ${reason}]`, ignore: true };
}

/** What {@linkcode brokerUrlWith} changes in the test broker's URL. */
export interface BrokerUrlChanges {
  /** Another user name. */
  username?: string;
  /** Another password. */
  password?: string;
  /** Another vhost. */
  vhost?: string;
}

/** {@linkcode BROKER_URL} (its first node) with other credentials or another vhost. */
export function brokerUrlWith(changes: BrokerUrlChanges): string {
  const url = new URL(BROKER_URL.split(",")[0]!);
  const { username, password, vhost } = changes;
  if (username !== undefined) url.username = encodeURIComponent(username);
  if (password !== undefined) url.password = encodeURIComponent(password);
  if (vhost !== undefined) url.pathname = `/${encodeURIComponent(vhost)}`;
  return url.href;
}

/** Runs `rabbitmqctl` (or {@linkcode RABBITMQCTL}) with `args` and returns its stdout; throws on failure. */
export async function rabbitmqctl(...args: string[]): Promise<string> {
  const [command, ...prefix] = RABBITMQCTL;
  const { success, stdout, stderr } = await new Deno.Command(command!, {
    args: [...prefix, ...args],
    stdin: "null",
  }).output();
  const text = new TextDecoder().decode(stdout).trim();
  if (!success) {
    throw new Error(`rabbitmqctl ${args.join(" ")} failed: ${new TextDecoder().decode(stderr)}`);
  }
  return text;
}

const ROOT = new URL("../", import.meta.url);

/** The permissions an entry script asks for in its shebang line: the ones it really runs with. */
export function scriptPermissions(script: string): string[] {
  const first = Deno.readTextFileSync(new URL(script, ROOT)).split("\n", 1)[0] ?? "";
  const match = /^#!\/usr\/bin\/env -S deno run (.*)$/.exec(first);
  if (!match?.[1]) throw new Error(`${script} has no "deno run" shebang`);
  return match[1].trim().split(/\s+/);
}

/** A queue name no other test uses. */
export function uniqueQueue(label: string): string {
  return `test_${label}_${crypto.randomUUID().slice(0, 8)}`;
}

/** Options for {@linkcode startScript} and {@linkcode runScript}. */
export interface ScriptOptions {
  /** Extra environment variables. AMQP_URL is set to the test broker unless given. */
  env?: Record<string, string>;
  /** Text (or bytes, sent as they are) for the script's stdin. */
  stdin?: string | Uint8Array;
}

/** Milliseconds a test waits for something before failing. */
export const DEADLINE_MS = 20_000;

/**
 * An entry script running as its own process, with its output collected line by line: the
 * product's own {@linkcode LibScriptProcess} (`lib/io/script_process.ts`), plus what tests wait on.
 */
export class ScriptProcess implements AsyncDisposable {
  /** Lines printed to stdout so far. */
  readonly stdout: string[] = [];
  /** Lines printed to stderr so far. */
  readonly stderr: string[] = [];
  readonly name: string;
  #process: LibScriptProcess;
  #waiters = new Set<() => void>();

  /** Follows `child` (stdin, stdout and stderr piped); `stdin` is written to it, then closed. */
  constructor(name: string, child: Deno.ChildProcess, stdin?: string | Uint8Array) {
    this.name = name;
    const collect = (into: string[]) => (line: string) => {
      into.push(line);
      this.#notify();
    };
    this.#process = new LibScriptProcess(name, child, {
      // Always written and closed, so that a script reading stdin sees its end.
      stdin: typeof stdin === "string"
        ? new TextEncoder().encode(stdin)
        : stdin ?? new Uint8Array(),
      onStdout: collect(this.stdout),
      onStderr: collect(this.stderr),
    });
    void this.#process.finished.then(() => this.#notify());
  }

  get pid(): number {
    return this.#process.pid;
  }

  get #exited(): boolean {
    return !Number.isNaN(this.#process.exitedAt);
  }

  get #reading(): Promise<unknown> {
    return this.#process.finished;
  }

  #notify(): void {
    for (const wake of this.#waiters) wake();
  }

  /** Lines on stdout matching `pattern`. */
  matching(pattern: RegExp): string[] {
    return this.stdout.filter((line) => pattern.test(line));
  }

  /** Waits until `count` stdout lines match `pattern`; fails after `timeout` ms. */
  async waitForLines(pattern: RegExp, count = 1, timeout = DEADLINE_MS): Promise<string[]> {
    const deadline = Date.now() + timeout;
    while (this.matching(pattern).length < count) {
      if (this.#exited) {
        await this.#reading;
        if (this.matching(pattern).length >= count) break;
        throw new Error(`${this.name} exited before printing ${pattern}: ${this.transcript()}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `${this.name}: no ${count} lines ${pattern} in ${timeout} ms: ${this.transcript()}`,
        );
      }
      const { promise, resolve } = Promise.withResolvers<void>();
      this.#waiters.add(resolve);
      const ac = new AbortController();
      await Promise.race([
        promise,
        sleep(Math.min(left, 200), undefined, { signal: ac.signal }).catch(() => {}),
      ]);
      ac.abort();
      this.#waiters.delete(resolve);
    }
    return this.matching(pattern);
  }

  /** Sends `signal` to the process (ignored if it has exited). */
  kill(signal: Deno.Signal = "SIGTERM"): void {
    this.#process.kill(signal);
  }

  /** Waits for the process to exit and its output to be read; fails after `timeout` ms. */
  async status(timeout = DEADLINE_MS): Promise<Deno.CommandStatus> {
    const ac = new AbortController();
    const timer = sleep(timeout, undefined, { signal: ac.signal }).catch(() => undefined);
    const result = await Promise.race([this.#process.finished, timer]);
    ac.abort();
    if (result === undefined) {
      throw new Error(`${this.name} did not exit within ${timeout} ms: ${this.transcript()}`);
    }
    await this.#reading;
    return result;
  }

  /** What the process printed, for failure messages. */
  transcript(): string {
    return `\n--- ${this.name} stdout\n${this.stdout.join("\n")}\n--- stderr\n${
      this.stderr.join("\n")
    }`;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.kill("SIGKILL");
    await this.status();
  }
}

/** Starts `script` (e.g. "worker.ts") with the permissions of its shebang. */
export function startScript(
  script: string,
  args: string[],
  options: ScriptOptions = {},
): ScriptProcess {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...scriptPermissions(script), script, ...args],
    cwd: ROOT,
    env: { AMQP_URL: BROKER_URL, NO_COLOR: "1", ...options.env },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  return new ScriptProcess(`${script} ${args.join(" ")}`, child, options.stdin);
}

/** What a finished script printed and how it exited. */
export interface ScriptResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `script` to completion. */
export async function runScript(
  script: string,
  args: string[],
  options: ScriptOptions = {},
): Promise<ScriptResult> {
  const process = startScript(script, args, options);
  const { code } = await process.status();
  return { code, stdout: process.stdout.join("\n"), stderr: process.stderr.join("\n") };
}

/** Starts a worker and waits until it consumes. */
export async function startWorker(queue: string, args: string[] = []): Promise<ScriptProcess> {
  const worker = startScript("worker.ts", ["--queue", queue, ...args]);
  await worker.waitForLines(/Waiting for messages/);
  return worker;
}

/** A connection of the test's own to the broker, closed on dispose. */
export interface Broker extends AsyncDisposable {
  connection: RecoveringChannelModel;
  /** Publishes tasks straight to an existing `queue`, confirmed. */
  publish(queue: string, ...bodies: Array<string | Uint8Array>): Promise<void>;
  /** Ready messages in `queue` (a passive declare). */
  ready(queue: string): Promise<number>;
  /**
   * Deletes queues; part of every test's cleanup. A task queue's dead queue (which a worker
   * declares when it starts) and delay levels (queues and exchanges, which a worker declares at
   * its first retry and a producer at its first delayed task) go with it, so that no test leaves
   * them behind. Deleting what does not exist is fine.
   */
  deleteQueues(...queues: string[]): Promise<void>;
  /** Deletes task queues with all they bring: `<queue>.dead` and the delay levels. */
  deleteTaskQueues(...queues: string[]): Promise<void>;
}

/** Deletes `queues` on `channel`, and the dead queue and delay levels of the task queues. */
export async function deleteWithDelays(
  channel: {
    deleteQueue(name: string): Promise<unknown>;
    deleteExchange(name: string): Promise<unknown>;
  },
  queues: readonly string[],
): Promise<void> {
  for (const queue of queues) {
    await channel.deleteQueue(queue);
    if (queue.endsWith(".dead") || /\.delay\.L\d\d$/.test(queue)) continue;
    await channel.deleteQueue(`${queue}.dead`);
    for (const level of delayLevelNames(queue)) {
      await channel.deleteQueue(level);
      await channel.deleteExchange(level);
    }
  }
}

/** Opens a broker connection for a test. */
export async function openBroker(): Promise<Broker> {
  const connection = await connect(BROKER_URL);
  const channel = await connection.createConfirmChannel();
  channel.on("error", () => {});
  return {
    connection,
    async publish(queue, ...bodies) {
      for (const body of bodies) {
        channel.sendToQueue(queue, Buffer.from(body), {
          persistent: true,
          messageId: crypto.randomUUID(),
        });
      }
      await channel.waitForConfirms();
    },
    async ready(queue) {
      const probe = await connection.createChannel();
      probe.on("error", () => {});
      try {
        return (await probe.checkQueue(queue)).messageCount;
      } finally {
        await probe.close().catch(() => {});
      }
    },
    async deleteQueues(...queues) {
      const cleaner = await connection.createChannel();
      cleaner.on("error", () => {});
      await deleteWithDelays(cleaner, queues);
      await cleaner.close();
    },
    async deleteTaskQueues(...queues) {
      const cleaner = await connection.createChannel();
      cleaner.on("error", () => {});
      await deleteWithDelays(cleaner, queues.flatMap((queue) => [queue, `${queue}.dead`]));
      await cleaner.close();
    },
    async [Symbol.asyncDispose]() {
      await channel.close().catch(() => {});
      await connection.close().catch(() => {});
    },
  };
}

/** Counts from the broker itself, including unacked messages, which AMQP does not report. */
export interface QueueCounts {
  ready: number;
  unacked: number;
  consumers: number;
}

/** Asks `rabbitmqctl` for a queue's counts; undefined when the queue does not exist. */
export async function queueCounts(queue: string): Promise<QueueCounts | undefined> {
  const stdout = await rabbitmqctl(
    "list_queues",
    "-q",
    "--formatter",
    "json",
    "name",
    "messages_ready",
    "messages_unacknowledged",
    "consumers",
  );
  const rows = JSON.parse(stdout) as Array<Record<string, unknown>>;
  const row = rows.find((r) => r.name === queue);
  if (!row) return undefined;
  return {
    ready: Number(row.messages_ready),
    unacked: Number(row.messages_unacknowledged),
    consumers: Number(row.consumers),
  };
}

/** Polls `check` until it returns true; fails with `what` after `timeout` ms. */
export async function waitUntil(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeout = DEADLINE_MS,
): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeout} ms waiting for ${what}`);
    await sleep(50);
  }
}
