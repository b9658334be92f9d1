/**
 * Making sure a broker answers: when nothing listens at the default local address, one is
 * started with Docker Compose if a Docker engine runs, else with a local `rabbitmq-server`, and
 * waited for until it accepts connections.
 *
 * @module
 */

import { setTimeout as sleep } from "node:timers/promises";
import { connect } from "../lib/broker/connection.ts";
import { formatSeconds } from "../lib/cli/duration.ts";
import { AmqpError, describeError } from "../lib/broker/errors.ts";
import { displayUrl, parseAmqpUrl } from "../lib/broker/url.ts";

/** The repository root: where compose.yaml is. */
const ROOT = new URL("../", import.meta.url);

/** Options for {@linkcode ensureBroker}. */
export interface EnsureBrokerOptions {
  /**
   * PEM certificate(s) of the CA that signed the broker's certificate, for `amqps://`.
   * @default {undefined}
   */
  ca?: string | undefined;
  /**
   * Aborting it ends the wait for a broker that was started; {@linkcode ensureBroker} then
   * rejects with its reason.
   * @default {undefined}
   */
  signal?: AbortSignal | undefined;
  /**
   * Called with each line of progress: that the broker answers, which command starts one, that
   * it is being waited for.
   * @default {() => {}}
   */
  onProgress?: (line: string) => void;
  /**
   * Let the command that starts a broker write to this process's stdout and stderr, after the
   * progress line that names it. Without it, its output is discarded. It never goes into a pipe,
   * which a daemon the command starts could hold open.
   * @default {false}
   */
  showOutput?: boolean;
  /**
   * The folder the commands run in: where compose.yaml is.
   * @default {the repository root}
   */
  cwd?: string | URL;
  /**
   * Milliseconds a broker that was started may take to accept connections.
   * @default {60000}
   */
  readyTimeout?: number;
}

/**
 * Makes sure a broker answers at `url`. When nothing listens there and `url` is the default local
 * address (`amqp://localhost:5672`), starts one: with `docker compose up -d --wait` if a Docker
 * engine runs, else with `rabbitmq-server -detached`; then waits for a real AMQP handshake, since
 * the port opens before the broker accepts connections.
 *
 * @throws {TypeError} when `url` is not an amqp:// or amqps:// URL.
 * @throws {RangeError} when `readyTimeout` is not a number of milliseconds, 0 or more.
 * @throws {AmqpError} when no broker answers and none could be started; one line that names the
 * address but never the password. A refusal that starting a broker would not fix (a wrong
 * password, an unknown host) is passed on as the connection reported it.
 */
export async function ensureBroker(url: string, options: EnsureBrokerOptions = {}): Promise<void> {
  const {
    ca,
    signal,
    onProgress = () => {},
    showOutput = false,
    cwd = ROOT,
    readyTimeout = 60_000,
  } = options;
  parseAmqpUrl(url);
  if (!Number.isFinite(readyTimeout) || readyTimeout < 0) {
    throw new RangeError(
      `Invalid ready timeout "${readyTimeout}": expected milliseconds, 0 or more`,
    );
  }
  signal?.throwIfAborted();
  const where = displayUrl(url);
  const first = await probeBroker(url, ca);
  if (first === undefined) {
    onProgress(`Broker: ${where} answers.`);
    return;
  }
  // Anything but "nothing listens" (a wrong password, an unknown host) is not fixed by starting
  // a broker; neither is a broker missing elsewhere than where ours would listen.
  if (first.code !== "ECONNREFUSED") throw first;
  if (!isDefaultLocalUrl(url)) {
    throw new AmqpError(
      `${describeError(first)}; the demo starts a broker only at amqp://localhost:5672`,
      { cause: first, code: first.code },
    );
  }
  const tools = { cwd, onProgress, showOutput };
  let code: number;
  if (await dockerEngineRuns(cwd)) {
    code = await runTool("docker", ["compose", "up", "-d", "--wait"], {
      ...tools,
      timeout: 300_000,
      announce: `No broker answers at ${where}; starting one with: docker compose up -d --wait`,
    });
  } else {
    try {
      code = await runTool("rabbitmq-server", ["-detached"], {
        ...tools,
        timeout: 30_000,
        announce: `No broker answers at ${where}; starting one with: rabbitmq-server -detached`,
      });
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      throw new AmqpError(
        `No broker answers at "${where}", and neither a Docker engine nor rabbitmq-server is ` +
          `there to start one: start Docker (the demo then runs "docker compose up -d --wait"), ` +
          `install RabbitMQ (https://www.rabbitmq.com/docs/download), or pass --url`,
        { cause: first, code: first.code },
      );
    }
  }
  if (code !== 0) {
    throw new AmqpError(`Starting the broker failed (exit code ${code}); see the output above`, {
      cause: first,
    });
  }
  onProgress("Waiting for the broker to accept connections...");
  await waitForBroker(url, ca, readyTimeout, signal);
  onProgress(`Broker: ${where} answers.`);
}

/** Whether `url` is where a broker started here would listen: plain AMQP on local port 5672. */
export function isDefaultLocalUrl(url: string): boolean {
  const parsed = parseAmqpUrl(url);
  const local = ["localhost", "127.0.0.1", "[::1]"].includes(parsed.hostname);
  return parsed.protocol === "amqp:" && local && (parsed.port === "" || parsed.port === "5672");
}

/** Connects once; resolves with the failure, or undefined when the broker answers. */
async function probeBroker(url: string, ca: string | undefined): Promise<AmqpError | undefined> {
  try {
    const connection = await connect(url, {
      ...(ca === undefined ? {} : { ca }),
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

/** Probes once a second until the broker completes a handshake, `timeout` ms at the most. */
async function waitForBroker(
  url: string,
  ca: string | undefined,
  timeout: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  const deadline = Date.now() + timeout;
  while (true) {
    const error = await probeBroker(url, ca);
    if (error === undefined) return;
    if (Date.now() >= deadline) {
      throw new AmqpError(
        `The broker did not accept connections within ${formatSeconds(timeout)}: ${
          describeError(error)
        }`,
        { cause: error, code: error.code },
      );
    }
    signal?.throwIfAborted();
    await sleep(1_000, undefined, signal ? { signal } : {}).catch(() => {});
  }
}

async function dockerEngineRuns(cwd: string | URL): Promise<boolean> {
  try {
    return await runTool("docker", ["info"], { cwd, timeout: 15_000 }) === 0;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

interface RunToolOptions {
  cwd: string | URL;
  /** Milliseconds before the command is killed. */
  timeout: number;
  /** The progress line that names the command; without it, the command runs silently. */
  announce?: string;
  onProgress?: (line: string) => void;
  showOutput?: boolean;
}

/**
 * Runs a command and resolves with its exit code. Its output goes to the terminal after
 * `announce` when `showOutput` is set, else nowhere; never into a pipe, which a daemon it
 * starts could hold open.
 *
 * @throws {Deno.errors.NotFound} when there is no such command.
 * @throws {AmqpError} when it did not finish within `timeout` ms.
 */
async function runTool(command: string, args: string[], options: RunToolOptions): Promise<number> {
  const { cwd, timeout, announce, onProgress = () => {}, showOutput = false } = options;
  const output = announce !== undefined && showOutput ? "inherit" : "null";
  const child = new Deno.Command(command, {
    args,
    cwd,
    stdin: "null",
    stdout: output,
    stderr: output,
    signal: AbortSignal.timeout(timeout),
  }).spawn();
  if (announce !== undefined) onProgress(announce);
  const status = await child.status;
  if (status.signal !== null) {
    throw new AmqpError(
      `"${command} ${args.join(" ")}" did not finish within ${formatSeconds(timeout)}`,
    );
  }
  return status.code;
}
