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
} as const;

/**
 * Tries made so far on a delivered task (0 for a new task): those recorded by earlier retries,
 * plus, on a quorum queue, the broker's count of deliveries that were never acked (the worker
 * died or lost its connection while on it), so a task that crashes workers runs out of tries too.
 */
export function attemptsSoFar(message: Pick<Message, "properties">): number {
  const count = (name: string) => {
    const value = Number(message.properties.headers?.[name] ?? 0);
    return Number.isSafeInteger(value) && value > 0 ? value : 0;
  };
  return count(TASK_HEADERS.attempts) + count("x-delivery-count");
}
