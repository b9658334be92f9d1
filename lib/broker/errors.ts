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
 * `PRECONDITION_FAILED - inequivalent arg 'durable' ...`.
 */
export function brokerReason(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const quoted = /with message "(.*)"$/.exec(message);
  return quoted?.[1] ?? message;
}

/**
 * One line for stderr: the message of an expected failure, with any credentials removed. Stack
 * traces are for bugs, and bugs are not what this line is for.
 */
export function describeError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const firstLine = message.split("\n", 1)[0] ?? "";
  return redactSecrets(firstLine);
}
