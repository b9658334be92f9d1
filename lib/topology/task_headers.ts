/**
 * What a task carries about its past: the headers this project writes on tasks it retries or
 * parks, and how many tries they show.
 *
 * @module
 */

import type { Message } from "../amqp.ts";

/**
 * Headers this project puts on tasks it retries or parks.
 *
 * @example Why a task's earlier try failed
 * ```ts
 * import { type Task, TASK_HEADERS } from "@workqueue/rabbitmq";
 *
 * function lastFailure(task: Task): string | undefined {
 *   const reason = task.headers[TASK_HEADERS.reason];
 *   return typeof reason === "string" ? reason : undefined; // e.g. "timeout after 500 ms"
 * }
 * ```
 */
export const TASK_HEADERS = {
  /** Tries made so far (a number). */
  attempts: "task-attempts",
  /** Why the last try failed: `exit code 3`, `signal SIGKILL`, `timeout after 500 ms`, ... */
  reason: "task-failure-reason",
  /** When the task was parked or last failed, ISO 8601. */
  failedAt: "task-failed-at",
  /** The host of the worker that parked it. */
  worker: "task-worker",
  /** The queue the task belongs to, so it can be requeued. */
  queue: "task-queue",
  /** Unique to each move of the task, so that a returned copy is known as this move's. */
  move: "task-move-id",
  /** When a delayed task (or a retry) is due, ISO 8601: set when it starts waiting. */
  dueAt: "task-due-at",
} as const;

/**
 * Tries this project recorded on a task: its `task-attempts`, trusted only when it is a whole
 * number and, with `queue`, when the task's `task-queue` names that queue (both are written
 * together on every move). Headers another program set are not evidence of tries.
 */
export function recordedAttempts(
  headers: Readonly<Record<string, unknown>> | undefined,
  queue?: string,
): number {
  const value = headers?.[TASK_HEADERS.attempts];
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) return 0;
  if (queue !== undefined && headers?.[TASK_HEADERS.queue] !== queue) return 0;
  return value;
}

/**
 * Deliveries of this very message that were never settled (the worker died or lost its
 * connection while on it), as a quorum queue counts them in `x-delivery-count`. Trusted only on
 * a redelivery, when the broker has written it: on a first delivery the header, if any, is the
 * producer's. Moves drop the header, so it never counts a copy's predecessor.
 */
export function crashedDeliveries(message: Pick<Message, "properties" | "fields">): number {
  if (!message.fields.redelivered) return 0;
  const value = message.properties.headers?.["x-delivery-count"];
  return typeof value === "number" && Number.isSafeInteger(value) && value > 0 ? value : 0;
}

/**
 * Tries made so far on a task delivered from `queue` (0 for a new task): those recorded by
 * earlier retries, plus deliveries of this copy that crashed its workers, so a task that kills
 * workers runs out of tries too.
 */
export function attemptsSoFar(
  message: Pick<Message, "properties" | "fields">,
  queue: string,
): number {
  return recordedAttempts(message.properties.headers, queue) + crashedDeliveries(message);
}

/**
 * Headers the broker writes for its own bookkeeping, meaningless on a copy in another queue: the
 * delivery count, and the record of dead-lettering each delay level adds to a task.
 */
export const BROKER_HEADERS = [
  "x-delivery-count",
  "x-death",
  "x-first-death-exchange",
  "x-first-death-queue",
  "x-first-death-reason",
  "x-last-death-exchange",
  "x-last-death-queue",
  "x-last-death-reason",
] as const;
