/**
 * One delivered task, start to finish: run the handler under a time limit, then ack it, or move it
 * into the queue's delay levels (to be retried when its retry delay is over) or to the dead queue,
 * and ack it only once the broker confirmed the move. The acks themselves go through
 * `ack_batch.ts`.
 *
 * @module
 */

import type { ConsumeMessage } from "../amqp.ts";
import { describeError } from "../broker/errors.ts";
import { republish } from "../produce/republish.ts";
import { attemptsSoFar, TASK_HEADERS } from "../topology/task_headers.ts";
import type { TaskQueue } from "../topology/task_queue.ts";
import type { AckBatch } from "./ack_batch.ts";
import type { Deadlines, Try } from "./deadlines.ts";
import type { Holder } from "./holder.ts";
import { sendOutcome } from "./outcome.ts";
import type { Mover } from "./mover.ts";
import { isPermanent, type Task, type TaskHandler, taskOf } from "./task.ts";

/**
 * What happened to a task, for logs and metrics.
 *
 * @example One line per finished task
 * ```ts
 * import type { TaskEvent } from "@workqueue/rabbitmq";
 *
 * function describe(event: TaskEvent): string | undefined {
 *   switch (event.type) {
 *     case "done":
 *       return `${event.id} done in ${event.durationMs} ms`;
 *     case "retried":
 *       return `${event.id} failed (${event.reason}), retried in ${event.delayMs} ms`;
 *     case "dead_lettered":
 *       return `${event.id} parked in ${event.queue} after ${event.attempts} tries`;
 *     default:
 *       return undefined;
 *   }
 * }
 * console.log(describe({ type: "done", id: "42", attempt: 1, durationMs: 12 }));
 * ```
 */
export type TaskEvent =
  | { type: "received"; id: string; attempt: number; redelivered: boolean; body: Uint8Array }
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
  | { type: "held"; id: string; reason: string; retryInMs: number }
  | { type: "stale_delivery"; id: string }
  | { type: "warning"; message: string };

/** What the failure path needs of a task. */
type Tried = Pick<Task, "id" | "attempt">;

/** How failures are handled. */
export interface FailurePolicy {
  /** The task queue, with its retry policy. */
  queue: TaskQueue;
  /** Recorded on parked tasks. */
  hostname: string;
  /** Stops tries that run past the time limit. */
  deadlines: Deadlines;
}

/** Where a task came from and where a failed one can be moved. */
export interface Delivery {
  /** The acks of the channel that delivered the task: its ack must go there. */
  acks: AckBatch;
  /** Holds the tasks that can be moved nowhere, out of the way of the others. */
  holder: Pick<Holder, "hold">;
  /**
   * Gives a confirm channel on the same connection for moving failed tasks, and makes sure the
   * delay levels that retries wait in exist.
   */
  mover: Pick<Mover, "channel" | "delays" | "forgetDelays">;
  /** The delivery. */
  message: ConsumeMessage;
}

/**
 * Runs `handler` for one delivery and settles it. Never throws, and never rejects. A handler that
 * returns at once, not a promise, has its task settled within this call, which then returns
 * undefined: a fast handler costs no promise per task.
 */
export function runTask(
  delivery: Delivery,
  handler: TaskHandler,
  policy: FailurePolicy,
  onEvent: (event: TaskEvent) => void,
): Promise<void> | undefined {
  const task = taskOf(delivery.message, attemptsSoFar(delivery.message, policy.queue.name) + 1);
  onEvent({
    type: "received",
    id: task.id,
    attempt: task.attempt,
    redelivered: task.redelivered,
    body: task.body,
  });
  if (task.attempt > policy.queue.maxTries) {
    // Only a quorum queue's delivery count gets here: the task's tries were all used up by
    // workers that died or lost their connection while on it.
    const reason = `delivered ${
      task.attempt - 1
    } times without finishing (the worker died or lost its connection)`;
    const tried = { id: task.id, attempt: task.attempt - 1 };
    return moveFailed(delivery, tried, reason, 0, policy, onEvent);
  }
  const run = policy.deadlines.start();
  let result: unknown;
  try {
    result = handler(task, run.signal);
  } catch (error) {
    return endTry(delivery, task, run, FAILED, error, policy, onEvent);
  }
  if (!isThenable(result)) return endTry(delivery, task, run, DONE, result, policy, onEvent);
  // A promise is raced with the time limit: a handler that ignores its signal still loses its
  // try when the time is up, and the worker goes on (its promise is left to settle unheard).
  return run.race(result).then(
    (value) => endTry(delivery, task, run, DONE, value, policy, onEvent),
    (error: unknown) => endTry(delivery, task, run, FAILED, error, policy, onEvent),
  );
}

const DONE = false;
const FAILED = true;

/**
 * Settles a task after its try: acked when done, moved when `failed`. `outcome` is what the
 * handler returned, or what it threw.
 */
function endTry(
  delivery: Delivery,
  task: Task,
  run: Try,
  failed: boolean,
  outcome: unknown,
  policy: FailurePolicy,
  onEvent: (event: TaskEvent) => void,
): Promise<void> | undefined {
  const durationMs = Math.round(policy.deadlines.finish(run));
  if (!failed) {
    // As in the tutorial: say it is done, then ack.
    onEvent({ type: "done", id: task.id, attempt: task.attempt, durationMs });
    settle(delivery, "ack", task, onEvent);
    if (task.awaited) {
      void delivery.mover.channel().then((channel) =>
        sendOutcome(channel, delivery.message, {
          id: task.id,
          status: "done",
          attempts: task.attempt,
          durationMs,
          worker: policy.hostname,
          ...(outcome === undefined ? {} : { result: outcome }),
        }), () => {});
    }
    return undefined;
  }
  const timedOut = run.signal.aborted;
  const permanent = !timedOut && isPermanent(outcome);
  const failure = describeError(timedOut ? run.signal.reason : outcome);
  const reason = permanent ? `permanent failure: ${failure}` : failure;
  return moveFailed(delivery, task, reason, durationMs, policy, onEvent, permanent);
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === "function";
}

async function moveFailed(
  delivery: Delivery,
  task: Tried,
  reason: string,
  durationMs: number,
  policy: FailurePolicy,
  onEvent: (event: TaskEvent) => void,
  permanent = false,
): Promise<void> {
  const { queue } = policy;
  const headers: Record<string, unknown> = {
    [TASK_HEADERS.attempts]: task.attempt,
    [TASK_HEADERS.reason]: reason,
    [TASK_HEADERS.failedAt]: new Date().toISOString(),
    [TASK_HEADERS.worker]: policy.hostname,
    [TASK_HEADERS.queue]: queue.name,
  };
  if (task.attempt <= queue.maxRetries && !permanent) {
    const delayMs = queue.retryDelayAfter(task.attempt);
    const route = queue.delayRoute(delayMs);
    try {
      // The copy waits in the delay levels, as a delayed task does, and is back in the queue
      // when its retry delay is over. They are declared once, before the first retry: workers
      // whose tasks never fail need none of them.
      await delivery.mover.delays(queue, (message) => onEvent({ type: "warning", message }));
      const mover = await delivery.mover.channel();
      await republish(mover, route, delivery.message, {
        ...headers,
        [TASK_HEADERS.dueAt]: new Date(Date.now() + delayMs).toISOString(),
      });
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
      return;
    } catch (error) {
      // The try still counts: a task the delay levels will not take is parked, not run again.
      delivery.mover.forgetDelays();
      const why = `${reason}; it could not be moved to ${route.exchange} (${describeError(error)})`;
      headers[TASK_HEADERS.reason] = why;
      return await park(delivery, task, why, headers, durationMs, policy, onEvent);
    }
  }
  await park(delivery, task, reason, headers, durationMs, policy, onEvent);
}

/** Parks a task in the dead queue; when even that fails, the task is held (see `holder.ts`). */
async function park(
  delivery: Delivery,
  task: Tried,
  reason: string,
  headers: Record<string, unknown>,
  durationMs: number,
  policy: FailurePolicy,
  onEvent: (event: TaskEvent) => void,
): Promise<void> {
  const target = policy.queue.deadQueue;
  const attempt = async () => {
    const mover = await delivery.mover.channel();
    await republish(mover, target, delivery.message, headers);
    if (settle(delivery, "ack", task, onEvent)) {
      onEvent({
        type: "dead_lettered",
        id: task.id,
        attempts: task.attempt,
        reason,
        queue: target,
        durationMs,
      });
      sendOutcome(mover, delivery.message, {
        id: task.id,
        status: "parked",
        attempts: task.attempt,
        durationMs,
        worker: policy.hostname,
        reason,
      });
    }
  };
  try {
    await attempt();
  } catch (error) {
    const held = (why: unknown, retryInMs: number) =>
      onEvent({
        type: "held",
        id: task.id,
        reason: `${reason}; it cannot be parked in ${target} either (${describeError(why)})`,
        retryInMs,
      });
    held(error, policy.queue.retryDelay);
    // Out of the way of the other tasks, never acked until it is parked, never lost.
    delivery.holder.hold({
      park: attempt,
      release: () => void settle(delivery, "requeue", task, onEvent),
      onStillHeld: held,
    });
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
  task: Tried,
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
