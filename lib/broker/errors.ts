/**
 * The one error class callers are expected to catch, and the rule that turns any error into the
 * single line a user sees on stderr.
 *
 * @module
 */

import { redactSecrets } from "./url.ts";

/**
 * Options for {@linkcode AmqpError}.
 *
 * @example Wrap a broker failure
 * ```ts
 * import { AmqpError, type AmqpErrorOptions } from "@workqueue/rabbitmq";
 *
 * const options: AmqpErrorOptions = { code: 404, cause: new Error("NOT_FOUND") };
 * const error = new AmqpError('Cannot use queue "images": NOT_FOUND - no queue', options);
 * console.log(error.code); // 404
 * ```
 */
export interface AmqpErrorOptions {
  /**
   * The AMQP reply code (403, 404, 406, ...) or the socket error code (`ECONNREFUSED`).
   * @default {undefined}
   */
  code?: number | string | undefined;
  /**
   * The error this one explains.
   * @default {undefined}
   */
  cause?: unknown;
}

/**
 * A failure talking to the broker that a caller can report and act on.
 *
 * @example Tell a refused queue from an unreachable broker (needs a broker: type-checked, not run)
 * ```ts
 * import { AmqpError, connect } from "@workqueue/rabbitmq";
 *
 * try {
 *   const connection = await connect("amqp://localhost");
 *   await connection.createProducer("task_queue");
 *   await connection.close();
 * } catch (error) {
 *   if (!(error instanceof AmqpError)) throw error;
 *   // 406: the queue exists with other arguments; "ECONNREFUSED": no broker there.
 *   console.error(`${error.message} (code ${error.code})`);
 * }
 * ```
 */
export class AmqpError extends Error {
  /** The AMQP reply code or socket error code, when known. */
  readonly code: number | string | undefined;

  /** Makes the error; `options.code` and `options.cause` as in {@linkcode AmqpErrorOptions}. */
  constructor(message: string, options: AmqpErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.name = "AmqpError";
    this.code = options.code;
  }
}

/** Bad command-line input: the caller prints it with the usage and exits 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** The reply code amqplib puts on channel and connection errors, if any. */
export function replyCode(error: unknown): number | string | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === "number" || typeof code === "string" ? code : undefined;
}

/**
 * The broker's own explanation from an amqplib error message, without amqplib's framing:
 * `PRECONDITION_FAILED - inequivalent arg 'durable' ...`. A refused permission is put in words
 * by {@linkcode accessRefused}.
 */
export function brokerReason(error: unknown): string {
  const refused = accessRefused(error);
  if (refused !== undefined) return refused;
  const message = error instanceof Error ? error.message : String(error);
  const quoted = /with message "(.*)"$/.exec(message);
  return quoted?.[1] ?? message;
}

/** One of the three permissions RabbitMQ grants a user on a vhost's queues and exchanges. */
export type Permission = "configure" | "write" | "read";

/** Which permission RabbitMQ checks, by the refused method (`classId/methodId`) and resource. */
const CHECKED: Readonly<Record<string, { queue?: Permission; exchange?: Permission }>> = {
  "40/10": { exchange: "configure" }, // exchange.declare
  "40/20": { exchange: "configure" }, // exchange.delete
  // queue.declare: configure on the queue; write on its dead-letter exchange, if it has one.
  "50/10": { queue: "configure", exchange: "write" },
  "50/20": { queue: "write", exchange: "read" }, // queue.bind
  "50/30": { queue: "read" }, // queue.purge
  "50/40": { queue: "configure" }, // queue.delete
  "50/50": { queue: "write", exchange: "read" }, // queue.unbind
  "60/20": { queue: "read" }, // basic.consume
  "60/40": { exchange: "write" }, // basic.publish
  "60/70": { queue: "read" }, // basic.get
};

/**
 * A permission the broker refused, in words: `access refused (403): user "u" may not read queue
 * "q" in vhost "/"`. The broker's text names the user, the queue or exchange and the vhost; the
 * permission follows from the method it refused (amqplib keeps its class and method ids).
 * `needed` overrides that, for a method that checks more than one (declaring a queue with a
 * dead-letter target also checks read on it). Undefined for any other error, a wrong password
 * included.
 */
export function accessRefused(
  error: unknown,
  needed: { queue?: Permission[]; exchange?: Permission[] } = {},
): string | undefined {
  const message = error instanceof Error ? error.message : String(error);
  const match = /access to (queue|exchange) '(.*)' in vhost '(.*)' refused for user '(.*)'/.exec(
    message,
  );
  if (!match) return undefined;
  const kind = match[1] as "queue" | "exchange";
  const [name, vhost, user] = [match[2]!, match[3]!, match[4]!];
  const ids = error as { classId?: unknown; methodId?: unknown };
  const checked = CHECKED[`${ids.classId}/${ids.methodId}`]?.[kind];
  const permissions = needed[kind] ?? (checked === undefined ? [] : [checked]);
  const what = `${kind} "${name}" in vhost "${vhost}"`;
  const verb = (permission: Permission) => permission === "write" ? "write to" : permission;
  const words = permissions.length === 0
    ? `may not use ${what}`
    : permissions.length === 1
    ? `may not ${verb(permissions[0]!)} ${what}`
    : `needs ${permissions.join(" and ")} permissions on ${what}`;
  return `access refused (403): user "${user}" ${words}`;
}

/**
 * One line for stderr: the message of an expected failure, with any credentials removed. Stack
 * traces are for bugs, and bugs are not what this line is for.
 */
export function describeError(error: unknown): string {
  const message = error instanceof AmqpError
    ? error.message
    : accessRefused(error) ?? (error instanceof Error ? error.message : String(error));
  const firstLine = message.split("\n", 1)[0] ?? "";
  return redactSecrets(firstLine);
}
