/**
 * One delivered task, start to finish: run the handler under a time limit, then ack it, or move it
 * to a retry queue or the dead queue and ack it only once the broker confirmed the move. The acks
 * themselves go through `ack_batch.ts`.
 *
 * @module
 */

import type { Buffer } from "node:buffer";
import { setTimeout as sleep } from "node:timers/promises";
import type { ConfirmChannel, ConsumeMessage } from "amqplib";
import type { AckBatch } from "./ack_batch.ts";
import {
  attemptsSoFar,
  deadQueueName,
  declareRetryQueue,
  republish,
  retryDelay,
  TASK_HEADERS,
} from "../topology/dead_letter.ts";
import { describeError } from "../broker/errors.ts";

/** One task as a handler sees it. */
export interface Task {
  /** The task id (AMQP `message-id`), or the delivery tag when the producer set none. */
  id: string;
  /** The body, unchanged. */
  body: Buffer;
  /** True when the broker delivered this task before (a worker died or its channel closed). */
  redelivered: boolean;
  /** Which try this is: 1 the first time, 2 after one failure, and so on. */
  attempt: number;
}

/**
 * Does one task; resolving means it succeeded, throwing means it failed (the error's message is
 * the reason). It should stop when `signal` aborts: the task has run out of time.
 */
export type TaskHandler = (task: Task, signal: AbortSignal) => Promise<void>;

/** What happened to a task, for logs and metrics. */
export type TaskEvent =
  | { type: "received"; id: string; attempt: number; redelivered: boolean; body: Buffer }
  | { type: "done"; id: string; attempt: number; durationMs: number }
  | {
    type: "retried";
    id: string;
    attempt: number;
    reason: string;
    delayMs: number;
    durationMs: number;
  }
  | {
    type: "dead_lettered";
    id: string;
    attempts: number;
    reason: string;
    queue: string;
    durationMs: number;
  }
  | { type: "requeued"; id: string; attempt: number; reason: string; durationMs: number }
  | { type: "stale_delivery"; id: string }
  | { type: "warning"; message: string };

/** How failures are handled. */
export interface FailurePolicy {
  /** The task queue. */
  queue: string;
  /** Retries after the first try; a task is tried at most `maxRetries + 1` times. */
  maxRetries: number;
  /** Milliseconds before the first retry, doubled for each further one. */
  retryDelay: number;
  /** Milliseconds a try may take before it is stopped and counted as failed; 0 for no limit. */
  taskTimeout: number;
  /** Recorded on parked tasks. */
  hostname: string;
  /** Stops tries that run past `taskTimeout`. */
  deadlines: Deadlines;
}

/**
 * The time limit of tries: one timer for all of them, rather than one per try, which a fast worker
 * would pay for on every task. A try is stopped within a tenth of the limit (at most 1 s) after it
 * ran out.
 */
export class Deadlines {
  #timeout: number;
  #running = new Map<AbortController, number>();
  #timer: ReturnType<typeof setInterval> | undefined;

  /** Tries may run `timeout` ms; 0 for no limit. */
  constructor(timeout: number) {
    this.#timeout = timeout;
    if (timeout > 0) {
      this.#timer = setInterval(() => this.#sweep(), Math.min(1000, Math.max(10, timeout / 10)));
    }
  }

  /** A try starts: its abort signal fires when it runs out of time. */
  start(): AbortController {
    const controller = new AbortController();
    if (this.#timer !== undefined) this.#running.set(controller, performance.now());
    return controller;
  }

  /** A try ended. */
  finish(controller: AbortController): void {
    this.#running.delete(controller);
  }

  /** Stops the timer. */
  close(): void {
    clearInterval(this.#timer);
  }

  #sweep(): void {
    const now = performance.now();
    // In start order, and all with the same limit: the first that has time left ends the sweep.
    for (const [controller, started] of this.#running) {
      if (now - started < this.#timeout) break;
      this.#running.delete(controller);
      controller.abort(new Error(`timeout after ${this.#timeout} ms`));
    }
  }
}

/** Where a task came from and where a failed one can be moved. */
export interface Delivery {
  /** The acks of the channel that delivered the task: its ack must go there. */
  acks: AckBatch;
  /** Gives a confirm channel on the same connection for moving failed tasks. */
  mover: { channel(): Promise<ConfirmChannel> };
  /** The delivery. */
  message: ConsumeMessage;
}

/** Runs `handler` for one delivery and settles it. Never throws. */
export async function runTask(
  delivery: Delivery,
  handler: TaskHandler,
  policy: FailurePolicy,
  onEvent: (event: TaskEvent) => void,
): Promise<void> {
  const { message } = delivery;
  const task: Task = {
    id: message.properties.messageId ?? `delivery-${message.fields.deliveryTag}`,
    body: message.content,
    redelivered: message.fields.redelivered,
    attempt: attemptsSoFar(message) + 1,
  };
  onEvent({
    type: "received",
    id: task.id,
    attempt: task.attempt,
    redelivered: task.redelivered,
    body: task.body,
  });
  if (task.attempt > policy.maxRetries + 1) {
    // Only a quorum queue's delivery count gets here: the task's tries were all used up by
    // workers that died or lost their connection while on it.
    const reason = `delivered ${
      task.attempt - 1
    } times without finishing (the worker died or lost its connection)`;
    await moveFailed(delivery, { ...task, attempt: task.attempt - 1 }, reason, 0, policy, onEvent);
    return;
  }
  const started = performance.now();
  const controller = policy.deadlines.start();
  let failure: string | undefined;
  try {
    await handler(task, controller.signal);
  } catch (error) {
    failure = describeError(controller.signal.aborted ? controller.signal.reason : error);
  } finally {
    policy.deadlines.finish(controller);
  }
  const durationMs = Math.round(performance.now() - started);
  if (failure === undefined) {
    // As in the tutorial: say it is done, then ack.
    onEvent({ type: "done", id: task.id, attempt: task.attempt, durationMs });
    settle(delivery, "ack", task, onEvent);
    return;
  }
  await moveFailed(delivery, task, failure, durationMs, policy, onEvent);
}

async function moveFailed(
  delivery: Delivery,
  task: Task,
  reason: string,
  durationMs: number,
  policy: FailurePolicy,
  onEvent: (event: TaskEvent) => void,
): Promise<void> {
  const headers = {
    [TASK_HEADERS.attempts]: task.attempt,
    [TASK_HEADERS.reason]: reason,
    [TASK_HEADERS.failedAt]: new Date().toISOString(),
    [TASK_HEADERS.worker]: policy.hostname,
    [TASK_HEADERS.queue]: policy.queue,
  };
  try {
    if (task.attempt <= policy.maxRetries) {
      const delayMs = retryDelay(task.attempt, { base: policy.retryDelay });
      // Declared before every use: cheap next to a failed task, and it keeps an idle retry
      // queue from expiring.
      const mover = await delivery.mover.channel();
      const target = await declareRetryQueue(mover, policy.queue, delayMs);
      await republish(mover, target, delivery.message, headers);
      if (settle(delivery, "ack", task, onEvent)) {
        onEvent({
          type: "retried",
          id: task.id,
          attempt: task.attempt,
          reason,
          delayMs,
          durationMs,
        });
      }
    } else {
      const target = deadQueueName(policy.queue);
      await republish(await delivery.mover.channel(), target, delivery.message, headers);
      if (settle(delivery, "ack", task, onEvent)) {
        onEvent({
          type: "dead_lettered",
          id: task.id,
          attempts: task.attempt,
          reason,
          queue: target,
          durationMs,
        });
      }
    }
  } catch (error) {
    // Held for a while before it goes back: a move that cannot succeed (missing permissions,
    // say) must not turn into a hot redelivery loop.
    await sleep(policy.retryDelay);
    if (settle(delivery, "requeue", task, onEvent)) {
      onEvent({
        type: "requeued",
        id: task.id,
        attempt: task.attempt,
        reason: `${reason}; it could not be moved (${describeError(error)})`,
        durationMs,
      });
    }
  }
}

/**
 * Acks or requeues a delivery. Its tag belongs to the channel that delivered it; if that channel
 * is gone the broker has already put the task back, so it will be redelivered, and nothing may be
 * sent for it on another channel. Returns false when a requeue could not be sent.
 */
function settle(
  delivery: Delivery,
  how: "ack" | "requeue",
  task: Task,
  onEvent: (event: TaskEvent) => void,
): boolean {
  if (how === "ack") {
    delivery.acks.ack(delivery.message, task.id);
    return true;
  }
  if (delivery.acks.requeue(delivery.message)) return true;
  onEvent({ type: "stale_delivery", id: task.id });
  return false;
}
