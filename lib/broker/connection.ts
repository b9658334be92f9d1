/**
 * The broker connection: connect with retries and amqplib's recovery (or, for a program that is
 * over in a moment, once, without it), heartbeats, TLS, and failures put into words that name the
 * address but never the password.
 *
 * @module
 */

import {
  type ChannelModel,
  connect as amqpConnect,
  type Options,
  type RecoveringChannelModel,
  type SocketOptions,
} from "amqplib";
import { accessRefused, AmqpError, describeError, replyCode } from "./errors.ts";
import { displayUrl, maskUrl, parseAmqpUrl } from "./url.ts";

/**
 * A reconnect that is about to happen, for logging.
 *
 * @example Log the reconnect attempts (needs a broker: type-checked, not run)
 * ```ts
 * import { connect, type ReconnectInfo } from "@workqueue/rabbitmq";
 *
 * function describe(info: ReconnectInfo): string {
 *   return `Reconnecting to ${info.url} in ${info.delay} ms (attempt ${info.attempt}): ${info.reason}`;
 * }
 * const connection = await connect("amqp://localhost");
 * connection.on("reconnecting", (event) => console.error(describe(event)));
 * ```
 */
export interface ReconnectInfo {
  /** 1 for the first attempt after a drop. */
  attempt: number;
  /** Milliseconds until the attempt. */
  delay: number;
  /** Why the last attempt or the connection failed, one line, no credentials. */
  reason: string;
  /** The broker the attempt goes to, without credentials. */
  url: string;
}

/** Options for {@linkcode connect}. */
export interface ConnectOptions {
  /**
   * Heartbeat interval in seconds, so that a dead peer is noticed in seconds rather than the
   * minutes TCP takes. 0 turns heartbeats off.
   * @default {15}
   */
  heartbeat?: number;
  /**
   * How long to wait for the TCP connection and the AMQP handshake, in milliseconds.
   * @default {10000}
   */
  timeout?: number;
  /**
   * PEM certificate(s) of the CA that signed the broker's certificate, for `amqps://` with a
   * private CA. The system's trusted CAs are used when absent; verification is always on.
   * @default {undefined}
   */
  ca?: string;
  /**
   * The name the broker shows for the connection (`connection_name`).
   * @default {"<main module's file name> pid <pid>"}
   */
  name?: string;
  /**
   * Attempts at the first connection before giving up. Errors that another attempt cannot fix
   * (wrong password, unknown vhost or host) end the attempts at once.
   * @default {3}
   */
  attempts?: number;
  /**
   * Reconnect forever when an established connection drops (a worker); otherwise a drop is
   * final (a one-shot producer).
   * @default {false}
   */
  recover?: boolean;
  /**
   * Runs on every new connection before it is handed out; if it throws, the connection is
   * closed and the attempt counts as failed. A worker starts consuming here.
   * @default {undefined}
   */
  setup?: (connection: ChannelModel) => Promise<void>;
  /**
   * Called with the broker's address (without credentials) each time a connection is made.
   * @default {() => {}}
   */
  onConnected?: (url: string) => void;
  /**
   * Called before each reconnect attempt after a drop.
   * @default {() => {}}
   */
  onReconnecting?: (info: ReconnectInfo) => void;
}

// The first reconnect waits ~100 ms, then doubles per attempt up to ~10 s, with ±20% jitter so
// that many workers do not reconnect in lockstep.
const INITIAL_DELAY_MS = 100;
const MAX_DELAY_MS = 10_000;

/** Milliseconds to wait before reconnect attempt `attempt` (1, 2, ...). */
export function reconnectDelay(attempt: number): number {
  const base = Math.min(MAX_DELAY_MS / 1.2, INITIAL_DELAY_MS * 2 ** (attempt - 1));
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

/**
 * Opens a connection to the broker at `url` with amqplib's connection recovery: with `recover`,
 * a dropped connection reconnects by itself and runs `setup` again. `url` may be a
 * comma-separated list of brokers (a cluster's nodes): the first that answers is used, and after
 * a drop they are tried in turn.
 *
 * @throws {TypeError} when `url` is not an amqp:// or amqps:// URL.
 * @throws {AmqpError} when the broker cannot be reached or refuses the connection; the message
 * names the address without credentials: `Cannot connect to "amqp://localhost:5672": connection refused`.
 */
export async function connect(
  url: string,
  options: ConnectOptions = {},
): Promise<RecoveringChannelModel> {
  const {
    recover = false,
    setup,
    onConnected = () => {},
    onReconnecting = () => {},
  } = options;
  const plan = planConnect(url, options);
  const { brokers, targets } = plan;
  // amqplib's recovery reads this object afresh on every attempt: pointing it at the next broker
  // before an attempt is how a list of brokers is tried in turn with amqplib's own recovery.
  const target: Options.Connect = { ...targets[0]! };
  let index = 0;
  const useNext = () => {
    index = (index + 1) % targets.length;
    Object.assign(target, targets[index]!);
  };
  let lastError: unknown;
  let connected = false;
  const connection = await amqpConnect(target, {
    ...plan.socketOptions,
    recovery: {
      waitForConnect: false,
      initialMaxRetries: plan.attempts * targets.length - 1,
      maxRetries: recover ? Infinity : 0,
      calculateDelay(attempt: number) {
        // Thrown here, the error ends recovery and becomes the reason the first connect failed.
        if (!connected && attempt >= targets.length && isFinal(lastError)) throw lastError;
        useNext();
        // The next broker is tried at once; a full round of failures backs off.
        const delay = attempt % targets.length === 0 ? reconnectDelay(attempt / targets.length) : 0;
        if (connected) {
          onReconnecting({
            attempt,
            delay,
            reason: describeError(lastError),
            url: displayUrl(brokers[index]!),
          });
        }
        return delay;
      },
      async setup(model: ChannelModel) {
        // amqplib attaches its own "error" listener only after setup; a connection dropped
        // during setup would otherwise throw its socket error out of the event loop.
        model.on("error", () => {});
        await setup?.(model);
        onConnected(displayUrl(brokers[index]!));
      },
    },
  });
  connection.on("connect-failed", (error: unknown) => lastError = error);
  connection.on("disconnect", (error: unknown) => lastError = error);
  // Without a listener an "error" event would throw out of the event loop and kill the process;
  // "disconnect" carries the same error to whoever owns the connection.
  connection.on("error", () => {});
  try {
    await connection.waitForConnect();
  } catch (error) {
    await connection.close().catch(() => {});
    throw plan.failure(error, index);
  }
  connected = true;
  return connection;
}

/** Options for {@linkcode connectOnce}: those of {@linkcode connect} that apply to it. */
export type ConnectOnceOptions = Pick<
  ConnectOptions,
  "heartbeat" | "timeout" | "ca" | "name" | "attempts"
>;

/**
 * Opens a connection that is not made again when it drops, for a program whose work is over in
 * a moment (a one-shot send): the first connection is tried as {@linkcode connect} tries it
 * (each broker of a list in turn, `attempts` rounds, the same backoff and the same errors), but
 * without amqplib's recovery around it, whose machinery such a program would run for nothing
 * (measured: 3 million instructions, 1 % of a one-shot send). A drop shows as the connection's
 * "close" event.
 *
 * @throws {TypeError} when `url` is not an amqp:// or amqps:// URL.
 * @throws {AmqpError} when the broker cannot be reached or refuses the connection.
 */
export async function connectOnce(
  url: string,
  options: ConnectOnceOptions = {},
): Promise<ChannelModel> {
  const plan = planConnect(url, options);
  const { targets } = plan;
  let lastError: unknown;
  let index = 0;
  for (let attempt = 0; attempt < plan.attempts * targets.length; attempt++) {
    if (attempt > 0) {
      if (attempt >= targets.length && isFinal(lastError)) break;
      index = attempt % targets.length;
      if (index === 0) {
        const delay = reconnectDelay(attempt / targets.length);
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
    try {
      const connection = await amqpConnect(targets[index]!, plan.socketOptions);
      // Without a listener an "error" event would throw out of the event loop; the channels'
      // "close" events tell their owners.
      connection.on("error", () => {});
      return connection;
    } catch (error) {
      lastError = error;
    }
  }
  throw plan.failure(lastError, index);
}

interface ConnectPlan {
  brokers: URL[];
  /** amqplib's form of each broker's address. */
  targets: Options.Connect[];
  attempts: number;
  socketOptions: SocketOptions;
  /** The error for a first connection that failed, last tried at broker `index`. */
  failure(error: unknown, index: number): AmqpError;
}

function planConnect(url: string, options: ConnectOnceOptions): ConnectPlan {
  const {
    heartbeat = 15,
    timeout = 10_000,
    attempts = 3,
    name: connectionName = defaultConnectionName(),
    ca,
  } = options;
  if (!Number.isInteger(heartbeat) || heartbeat < 0) {
    throw new RangeError(`Invalid heartbeat "${heartbeat}": expected whole seconds, 0 or more`);
  }
  if (!Number.isInteger(attempts) || attempts < 1) {
    throw new RangeError(`Invalid attempts "${attempts}": expected a whole number of at least 1`);
  }
  const brokers = parseBrokerList(url);
  return {
    brokers,
    targets: brokers.map((broker) => connectTarget(broker, heartbeat)),
    attempts,
    socketOptions: {
      // noDelay: Nagle plus delayed ACKs add ~40 ms to every round trip of a one-shot send.
      noDelay: true,
      // Named so that an operator (rabbitmqctl list_connections, the management UI) can tell
      // which process a connection is: the program and its pid.
      clientProperties: { connection_name: connectionName },
      timeout,
      ...(ca === undefined ? {} : { ca: [ca] }),
    },
    failure(error, index) {
      const where = brokers.map((broker) => `"${displayUrl(broker)}"`).join(", ");
      return new AmqpError(
        `Cannot connect to ${brokers.length > 1 ? `any of ${where}` : where}: ${
          connectReason(error, brokers[index]!)
        }`,
        { cause: error, code: replyCode(error) ?? handshakeCode(error) },
      );
    },
  };
}

function defaultConnectionName(): string {
  const program = Deno.mainModule.split("/").pop() || "deno";
  return `${decodeURIComponent(program)} pid ${Deno.pid}`;
}

/**
 * Parses a broker address or a comma-separated list of them (a cluster's nodes).
 *
 * @throws {TypeError} when the list is empty or an address is not an amqp:// or amqps:// URL.
 */
export function parseBrokerList(urls: string): URL[] {
  const list = urls.split(",").map((url) => url.trim()).filter((url) => url !== "");
  if (list.length === 0) throw new TypeError("Invalid broker URL: none given");
  try {
    return list.map(parseAmqpUrl);
  } catch (error) {
    if (list.length === 1) throw error;
    // A "," may have cut a password in two: the pieces would show parts of it.
    const why = (error as Error).message.replace(/^Invalid broker URL "[^"]*": /, "");
    throw new TypeError(`Invalid broker URL list "${maskUrl(urls)}": ${why}`);
  }
}

// The object form of an address for amqplib, so that it can be swapped between attempts.
function connectTarget(url: URL, heartbeat: number): Options.Connect {
  const query = url.searchParams;
  const number = (name: string) => query.has(name) ? Number(query.get(name)) : undefined;
  return {
    protocol: url.protocol.slice(0, -1),
    hostname: url.hostname.replace(/^\[|\]$/g, ""),
    port: Number(url.port) || (url.protocol === "amqps:" ? 5671 : 5672),
    username: decodeURIComponent(url.username) || "guest",
    password: url.username === "" && url.password === ""
      ? "guest"
      : decodeURIComponent(url.password),
    vhost: url.pathname.length > 1 ? decodeURIComponent(url.pathname.slice(1)) : "/",
    heartbeat: number("heartbeat") ?? heartbeat,
    ...(number("frameMax") === undefined ? {} : { frameMax: number("frameMax")! }),
    ...(number("channelMax") === undefined ? {} : { channelMax: number("channelMax")! }),
  };
}

// Another attempt cannot fix a wrong password, an unknown vhost or host, or a setup the broker
// refused (403 access refused, 404 not found, 406 precondition failed).
function isFinal(error: unknown): boolean {
  if (error instanceof TypeError || error instanceof RangeError) return true;
  if (error instanceof AmqpError) return [403, 404, 406].includes(Number(error.code));
  const message = error instanceof Error ? error.message : "";
  return replyCode(error) === "ENOTFOUND" || isCertificateError(error) ||
    /ACCESS.REFUSED|ConnectionClose/.test(message);
}

function isCertificateError(error: unknown): boolean {
  const code = String(replyCode(error) ?? "");
  return /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ALTNAME/.test(code);
}

function handshakeCode(error: unknown): number | undefined {
  const match = /\b(\d{3}) \(/.exec(error instanceof Error ? error.message : "");
  return match ? Number(match[1]) : undefined;
}

function connectReason(error: unknown, url: URL): string {
  const code = replyCode(error);
  const message = error instanceof Error ? error.message : String(error);
  if (code === "ECONNREFUSED") return "connection refused";
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") return `unknown host "${url.hostname}"`;
  if (isCertificateError(error)) {
    return `the broker's TLS certificate is not trusted (${code}): pass its CA certificate with --ca FILE`;
  }
  if (code === "ETIMEDOUT" || /timeout|timed out/i.test(message)) return "timed out";
  if (code === "ECONNRESET") return "connection reset by the broker";
  // A setup that failed (a worker's first consume) is not a failed login.
  if (error instanceof AmqpError) return error.message;
  const refused = accessRefused(error);
  if (refused !== undefined) return refused;
  if (/ACCESS.REFUSED/.test(message)) {
    return "access refused (403): wrong user name or password";
  }
  if (/ConnectionClose/.test(message)) {
    const vhost = decodeURIComponent(url.pathname.slice(1)) || "/";
    return `the broker closed the connection during the handshake: does vhost "${vhost}" exist, and may this user use it?`;
  }
  return typeof code === "string" ? `${code}: ${message}` : message;
}

/**
 * Reads a CA certificate file for {@linkcode ConnectOptions.ca}.
 *
 * @throws {TypeError} when the file cannot be read or holds no PEM certificate.
 */
export function readCaFile(path: string): string {
  let pem: string;
  try {
    pem = Deno.readTextFileSync(path);
  } catch (error) {
    throw new TypeError(`Cannot read CA file "${path}": ${(error as Error).message}`);
  }
  if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
    throw new TypeError(`Cannot use CA file "${path}": no PEM certificate in it`);
  }
  return pem;
}
