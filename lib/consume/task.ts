/**
 * A task as a handler sees it, the handler's signature, and the error that says "do not retry".
 *
 * @module
 */

import type { ConsumeMessage } from "../amqp.ts";

/**
 * One delivered task.
 *
 * @example Read a JSON task
 * ```ts
 * import type { Task } from "@workqueue/rabbitmq";
 *
 * function size(task: Task): number {
 *   const { width, height } = task.json<{ width: number; height: number }>();
 *   return width * height;
 * }
 * ```
 */
export interface Task {
  /** The task id (AMQP `message-id`), or `delivery-<tag>` when the producer set none. */
  readonly id: string;
  /** The body, unchanged. */
  readonly body: Uint8Array;
  /** Which try this is: 1 the first time, 2 after one failure, and so on. */
  readonly attempt: number;
  /** True when the broker delivered this task before (a worker died or its channel closed). */
  readonly redelivered: boolean;
  /** The AMQP headers, as the producer (and earlier tries) set them. */
  readonly headers: Readonly<Record<string, unknown>>;
  /** The producer's `content-type`, if it set one (`application/json` for JSON tasks). */
  readonly contentType: string | undefined;
  /**
   * True when the producer waits for the outcome (it set `reply-to`): what the handler returns
   * is sent to it.
   */
  readonly awaited: boolean;
  /** The body as UTF-8 text (invalid bytes become U+FFFD). */
  text(): string;
  /**
   * The body parsed as JSON.
   *
   * @throws {SyntaxError} when the body is not JSON.
   */
  json<T = unknown>(): T;
}

/**
 * Does one task. Returning (or resolving) means done: the task is acked. Throwing means this try
 * failed: the task is retried later, or parked after its last try; throwing a
 * {@linkcode PermanentError} parks it at once. It should stop when `signal` aborts: the try has run
 * out of time (or the worker is being forced to stop), and its result no longer counts.
 *
 * @example A handler
 * ```ts
 * import { PermanentError, type TaskHandler } from "@workqueue/rabbitmq";
 *
 * export const resize: TaskHandler = async (task, signal) => {
 *   const { url } = task.json<{ url?: string }>();
 *   if (!url) throw new PermanentError("no url in the task");
 *   const response = await fetch(url, { signal });
 *   return { bytes: (await response.arrayBuffer()).byteLength };
 * };
 * ```
 */
export type TaskHandler = (task: Task, signal: AbortSignal) => unknown | Promise<unknown>;

/**
 * Thrown by a handler for a task that no retry can fix (bad input, say): the task is parked in the
 * dead queue after this try, whatever retries it has left.
 *
 * @example Park a task at once
 * ```ts
 * import { PermanentError } from "@workqueue/rabbitmq";
 *
 * function parse(text: string): number {
 *   const value = Number(text);
 *   if (Number.isNaN(value)) throw new PermanentError(`not a number: ${text}`);
 *   return value;
 * }
 * parse("42");
 * ```
 */
export class PermanentError extends Error {
  /** Makes the error; `options.cause` as for `Error`. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "PermanentError";
  }
}

/**
 * Whether `error` is a {@linkcode PermanentError}, also one from another copy of this module (a
 * handler that imports another version of the library).
 */
export function isPermanent(error: unknown): boolean {
  return error instanceof PermanentError ||
    (error instanceof Error && error.name === "PermanentError");
}

const decoder = new TextDecoder();

/** The {@linkcode Task} for a delivery, made of `attempt` as counted by the caller. */
export function taskOf(message: ConsumeMessage, attempt: number): Task {
  return new DeliveredTask(message, attempt);
}

// A class rather than an object literal: its methods are shared, not two closures per task.
class DeliveredTask implements Task {
  readonly id: string;
  readonly body: Uint8Array;
  readonly attempt: number;
  readonly redelivered: boolean;
  readonly headers: Readonly<Record<string, unknown>>;
  readonly contentType: string | undefined;
  readonly awaited: boolean;

  constructor({ content, properties, fields }: ConsumeMessage, attempt: number) {
    this.id = properties.messageId ?? `delivery-${fields.deliveryTag}`;
    // A view, not a copy: handlers get a plain Uint8Array, never a Node Buffer.
    this.body = new Uint8Array(content.buffer, content.byteOffset, content.byteLength);
    this.attempt = attempt;
    this.redelivered = fields.redelivered;
    this.headers = properties.headers ?? {};
    this.contentType = properties.contentType;
    this.awaited = typeof properties.replyTo === "string" && properties.replyTo !== "";
  }

  text(): string {
    return decoder.decode(this.body);
  }

  json<T = unknown>(): T {
    return JSON.parse(decoder.decode(this.body)) as T;
  }
}
