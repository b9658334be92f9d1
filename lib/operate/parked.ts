/**
 * Parked tasks: the tasks a worker gave up on, kept in `<queue>.dead`. Listing them, moving them
 * back to the task queue, deleting them, and showing them safely on a terminal.
 *
 * Listing takes the tasks with `basic.get` without acking them and hands them all back at the
 * end, so the dead queue keeps its tasks and their order. Requeueing is, like every other move,
 * publish-with-confirm to the task queue first and ack in the dead queue second: a crash in
 * between leaves a duplicate, never a loss.
 *
 * @module
 */

import type { Buffer } from "node:buffer";
import { ack, type Channel, type ChannelOpener, checkQueue } from "../amqp.ts";
import type { GetMessage } from "amqplib";
import { republish } from "../produce/republish.ts";
import { recordedAttempts, TASK_HEADERS } from "../topology/task_headers.ts";
import type { OpenOptions, TaskQueue } from "../topology/task_queue.ts";
import { AmqpError, brokerReason, describeError, replyCode } from "../broker/errors.ts";

/** One parked task, as read from the dead queue. */
export interface ParkedTask {
  /** The task id (AMQP `message-id`); undefined when the producer set none. */
  id: string | undefined;
  /** The body, unchanged. */
  body: Buffer;
  /** Tries made before it was parked (`task-attempts`, 0 when absent). */
  attempts: number;
  /** Why its last try failed (`task-failure-reason`). */
  reason: string | undefined;
  /** When it was parked, ISO 8601 (`task-failed-at`). */
  failedAt: string | undefined;
  /** The host of the worker that parked it (`task-worker`). */
  worker: string | undefined;
  /** The task queue it came from (`task-queue`). */
  queue: string | undefined;
}

/** Options for {@linkcode listParked}. */
export interface ListParkedOptions {
  /**
   * The most tasks to list, oldest first.
   * @default {Infinity}
   */
  limit?: number;
}

/** What {@linkcode listParked} found. */
export interface ParkedList {
  /** The dead queue's name. */
  deadQueue: string;
  /** Tasks ready in the dead queue when the listing started (0 when it does not exist). */
  total: number;
  /** The oldest `limit` of them, in queue order. */
  tasks: ParkedTask[];
}

/** Options for {@linkcode requeueParked}. */
export interface RequeueParkedOptions {
  /**
   * The most tasks to move back, oldest first.
   * @default {Infinity}
   */
  limit?: number;
  /**
   * Called after each task was confirmed in the task queue and acked in the dead queue.
   * @default {() => {}}
   */
  onRequeued?: (task: ParkedTask) => void;
  /**
   * Called when the task queue exists with other arguments and is used as it is.
   * @default {() => {}}
   */
  onWarning?: OpenOptions["onWarning"];
}

/** What {@linkcode requeueParked} did. */
export interface RequeueResult {
  /** The dead queue's name. */
  deadQueue: string;
  /** Tasks ready in the dead queue when it started (0 when it does not exist). */
  total: number;
  /** Tasks moved back to the task queue. */
  requeued: number;
}

/** Headers that describe a failure; a requeued task starts afresh without them. */
const FAILURE_HEADERS: readonly string[] = [
  TASK_HEADERS.reason,
  TASK_HEADERS.failedAt,
  TASK_HEADERS.worker,
  TASK_HEADERS.queue,
];

/**
 * Tasks ready in the dead queue of `queue`, or undefined when there is no dead queue. A passive
 * check: nothing is declared.
 *
 * @throws {AmqpError} when the broker refuses the check for another reason (access refused).
 */
export async function countParked(
  connection: ChannelOpener,
  queue: TaskQueue,
): Promise<number | undefined> {
  return (await checkQueue(connection, queue.deadQueue))?.messageCount;
}

/**
 * Reads the parked tasks of `queue` without removing them: each is taken with `basic.get` and not
 * acked, and all are handed back to the broker (nack with requeue) before the channel closes. The
 * broker puts them back where they were, so order is kept. While a listing runs, the tasks it
 * holds are invisible to other readers of the dead queue. A dead queue that does not exist is
 * listed as empty, and is not created.
 *
 * @throws {RangeError} when `limit` is not a whole number of at least 1 (or Infinity).
 * @throws {AmqpError} when the broker refuses or the connection drops; the tasks stay parked.
 */
export async function listParked(
  connection: ChannelOpener,
  queue: TaskQueue,
  options: ListParkedOptions = {},
): Promise<ParkedList> {
  const { limit = Infinity } = options;
  checkLimit(limit);
  const deadQueue = queue.deadQueue;
  const total = await countParked(connection, queue) ?? 0;
  const tasks: ParkedTask[] = [];
  if (total === 0) return { deadQueue, total, tasks };
  const channel = await connection.createChannel();
  channel.on("error", () => {});
  try {
    // Bounded by the count at the start: tasks parked meanwhile are not chased.
    while (tasks.length < Math.min(limit, total)) {
      const message = await getTask(channel, deadQueue);
      if (message === false) break;
      tasks.push(parkedTask(message));
    }
    return { deadQueue, total, tasks };
  } finally {
    // Closing the channel would hand them back too; the nack says so explicitly.
    try {
      channel.nackAll(true);
    } catch {
      // The channel is already closed, which hands them back as well.
    }
    await channel.close().catch(() => {});
  }
}

/**
 * Moves the parked tasks of `queue` back to `queue`, oldest first, each with `task-attempts` reset
 * to 0 and the failure headers (`task-failure-reason`, `task-failed-at`, `task-worker`,
 * `task-queue`) removed, so that it gets all its tries again. Each is published to the task queue
 * with a confirm first and acked in the dead queue second. The task queue is declared the way the
 * project declares it. Moves at most as many tasks as were parked when it started, so a task
 * that fails and is parked again meanwhile is not moved twice.
 *
 * @throws {RangeError} when `limit` is not a whole number of at least 1 (or Infinity).
 * @throws {AmqpError} when a copy is not confirmed, the broker refuses, or the connection drops;
 * the message says how many were moved. The task in hand stays parked.
 */
export async function requeueParked(
  connection: ChannelOpener,
  queue: TaskQueue,
  options: RequeueParkedOptions = {},
): Promise<RequeueResult> {
  const { limit = Infinity, onRequeued = () => {}, onWarning = () => {} } = options;
  checkLimit(limit);
  const deadQueue = queue.deadQueue;
  const { channel } = await queue.open(connection, { confirm: true, onWarning });
  let requeued = 0;
  try {
    const total = await countParked(connection, queue) ?? 0;
    const wanted = Math.min(limit, total);
    try {
      while (requeued < wanted) {
        const message = await getTask(channel, deadQueue);
        if (message === false) break;
        await republish(channel, queue.name, withoutFailureHeaders(message), {
          [TASK_HEADERS.attempts]: 0,
        });
        ack(channel, message);
        requeued++;
        onRequeued(parkedTask(message));
      }
    } catch (error) {
      throw new AmqpError(
        `${
          describeError(error)
        } (${requeued} of ${wanted} requeued before; the rest are still parked)`,
        { cause: error, code: replyCode(error) },
      );
    }
    return { deadQueue, total, requeued };
  } finally {
    // Waiting for close-ok means the broker has had the last ack; a task in hand goes back.
    await channel.close().catch(() => {});
  }
}

/**
 * Deletes every parked task of `queue` (purges `<queue>.dead`) and resolves with how many were
 * deleted; 0 when there is no dead queue.
 *
 * @throws {AmqpError} when the broker refuses or the connection drops.
 */
export async function purgeParked(connection: ChannelOpener, queue: TaskQueue): Promise<number> {
  const deadQueue = queue.deadQueue;
  const channel = await connection.createChannel();
  channel.on("error", () => {});
  try {
    return (await channel.purgeQueue(deadQueue)).messageCount;
  } catch (error) {
    if (replyCode(error) === 404) return 0;
    throw new AmqpError(`Cannot purge queue "${deadQueue}": ${brokerReason(error)}`, {
      cause: error,
      code: replyCode(error),
    });
  } finally {
    await channel.close().catch(() => {});
  }
}

async function getTask(channel: Channel, deadQueue: string): Promise<GetMessage | false> {
  try {
    return await channel.get(deadQueue, { noAck: false });
  } catch (error) {
    throw new AmqpError(`Cannot read queue "${deadQueue}": ${brokerReason(error)}`, {
      cause: error,
      code: replyCode(error),
    });
  }
}

function checkLimit(limit: number): void {
  if (limit !== Infinity && (!Number.isSafeInteger(limit) || limit < 1)) {
    throw new RangeError(`Invalid limit "${limit}": expected a whole number of at least 1`);
  }
}

function withoutFailureHeaders(message: GetMessage): GetMessage {
  const headers = { ...message.properties.headers };
  for (const name of FAILURE_HEADERS) delete headers[name];
  return { ...message, properties: { ...message.properties, headers } };
}

/** The task as a dead-queue message carries it. */
export function parkedTask(message: Pick<GetMessage, "content" | "properties">): ParkedTask {
  const headers = message.properties.headers ?? {};
  const id = message.properties.messageId;
  return {
    id: typeof id === "string" && id !== "" ? id : undefined,
    body: message.content,
    attempts: recordedAttempts(message.properties.headers),
    reason: headerText(headers[TASK_HEADERS.reason]),
    failedAt: headerText(headers[TASK_HEADERS.failedAt]),
    worker: headerText(headers[TASK_HEADERS.worker]),
    queue: headerText(headers[TASK_HEADERS.queue]),
  };
}

function headerText(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "string") return value;
  if (value instanceof Uint8Array) return new TextDecoder().decode(value);
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return JSON.stringify(value);
}
