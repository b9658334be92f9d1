/**
 * The consume and ack path: fair dispatch with a prefetch limit, manual acks sent only after a
 * task's handler finished, recovery from lost connections and channels, and a graceful stop
 * that lets tasks in flight finish.
 *
 * @module
 */

import type { Buffer } from "node:buffer";
import { setTimeout as sleep } from "node:timers/promises";
import {
  type Channel,
  type ChannelModel,
  connect,
  type ConsumeMessage,
  openTaskChannel,
  reconnectDelay,
  type ReconnectInfo,
} from "./amqp.ts";
import { describeError } from "./errors.ts";

/** One task as a handler sees it. */
export interface Task {
  /** The task id (AMQP `message-id`), or the delivery tag when the producer set none. */
  id: string;
  /** The body, unchanged. */
  body: Buffer;
  /** True when the broker delivered this task before (a worker died or its channel closed). */
  redelivered: boolean;
}

/** Does one task; resolving means it is finished and may be acked. */
export type TaskHandler = (task: Task) => Promise<void>;

/** Something the operator should hear about, as it happens. */
export type WorkerEvent =
  | { type: "warning"; message: string }
  | { type: "connection_lost"; reason: string }
  | ({ type: "reconnecting" } & ReconnectInfo)
  | { type: "reconnected" }
  | { type: "channel_lost"; reason: string }
  | { type: "consumer_cancelled" }
  | { type: "stale_delivery"; id: string };

/** Options for {@linkcode runWorker}. */
export interface RunWorkerOptions {
  /**
   * The queue to consume.
   * @default {"task_queue"}
   */
  queue?: string;
  /**
   * How many unacked tasks the broker may hand this worker at once. 1 is fair dispatch: a busy
   * worker gets no new task until it acked the last.
   * @default {1}
   */
  prefetch?: number;
  /**
   * Heartbeat interval in seconds.
   * @default {15}
   */
  heartbeat?: number;
  /**
   * PEM CA certificate for `amqps://` with a private CA.
   * @default {undefined}
   */
  ca?: string;
  /**
   * Aborting it stops the worker gracefully: no new tasks, tasks in flight finish and are acked.
   * @default {undefined}
   */
  signal?: AbortSignal;
  /**
   * Called once consuming has started for the first time.
   * @default {() => {}}
   */
  onReady?: () => void;
  /**
   * Called for connection and channel trouble and other things worth a log line.
   * @default {() => {}}
   */
  onEvent?: (event: WorkerEvent) => void;
}

/** A channel with its consumer; replaced when the broker closes either. */
interface Subscription {
  channel: Channel;
  consumerTag: string;
}

/**
 * Consumes the task queue at `url` and runs `handler` for every task, acking each after its
 * handler resolved. A lost connection is re-established (forever, with backoff), a lost channel
 * or a consumer cancelled by the broker is replaced, and consuming resumes; tasks that were not
 * acked are redelivered by the broker. Resolves after a graceful stop.
 *
 * @throws {AmqpError} when the first connection cannot be made.
 */
export async function runWorker(
  url: string,
  handler: TaskHandler,
  options: RunWorkerOptions = {},
): Promise<void> {
  const {
    queue = "task_queue",
    prefetch = 1,
    heartbeat = 15,
    ca,
    signal,
    onReady = () => {},
    onEvent = () => {},
  } = options;
  if (!Number.isInteger(prefetch) || prefetch < 1 || prefetch > 65535) {
    throw new RangeError(`Invalid prefetch "${prefetch}": expected a whole number from 1 to 65535`);
  }
  signal?.throwIfAborted();

  const inFlight = new Set<Promise<void>>();
  let current: Subscription | undefined;
  let live: ChannelModel | undefined;
  let stopping = false;

  const subscribe = async (model: ChannelModel): Promise<void> => {
    const { channel } = await openTaskChannel(model, queue, {
      onWarning: (message) => onEvent({ type: "warning", message }),
    });
    await channel.prefetch(prefetch);
    const subscription: Subscription = { channel, consumerTag: "" };
    let closeReason = "the broker closed the channel";
    channel.on("error", (error: unknown) => closeReason = describeError(error));
    channel.on("close", () => {
      if (current !== subscription) return;
      current = undefined;
      // A dropped connection closes its channels first; wait a turn so that case is left to
      // connection recovery, and only a channel closed on its own is replaced here.
      setTimeout(() => {
        if (stopping || live !== model || current !== undefined) return;
        onEvent({ type: "channel_lost", reason: closeReason });
        void resubscribe(model);
      }, 0);
    });
    const { consumerTag } = await channel.consume(queue, (message) => {
      if (message === null) {
        // The broker cancels consumers of a deleted queue; declare it again and resubscribe.
        onEvent({ type: "consumer_cancelled" });
        void channel.close().catch(() => {});
        return;
      }
      const work = handle(channel, message, handler, onEvent).finally(() => inFlight.delete(work));
      inFlight.add(work);
    }, { noAck: false });
    subscription.consumerTag = consumerTag;
    current = subscription;
  };

  const resubscribe = async (model: ChannelModel): Promise<void> => {
    for (let attempt = 1; !stopping && live === model && current === undefined; attempt++) {
      await sleep(reconnectDelay(attempt));
      if (stopping || live !== model || current !== undefined) return;
      try {
        await subscribe(model);
      } catch (error) {
        onEvent({
          type: "warning",
          message: `Cannot consume "${queue}" yet: ${describeError(error)}`,
        });
      }
    }
  };

  let connectedOnce = false;
  const connection = await connect(url, {
    heartbeat,
    ...(ca === undefined ? {} : { ca }),
    recover: true,
    async setup(model) {
      live = model;
      if (!stopping) await subscribe(model);
    },
    onReconnecting: (info) => onEvent({ type: "reconnecting", ...info }),
  });
  connection.on("disconnect", (error: unknown) => {
    live = undefined;
    current = undefined;
    if (!stopping) onEvent({ type: "connection_lost", reason: describeError(error) });
  });
  connection.on("connect", () => {
    if (connectedOnce) onEvent({ type: "reconnected" });
    connectedOnce = true;
  });
  connectedOnce = true;
  onReady();

  try {
    if (signal && !signal.aborted) {
      await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
    }
    // Graceful: take no new task, finish and ack those in flight, then close.
    stopping = true;
    const last = current;
    if (last) await last.channel.cancel(last.consumerTag).catch(() => {});
    await Promise.all(inFlight);
    if (last) await last.channel.close().catch(() => {});
  } finally {
    stopping = true;
    await connection.close().catch(() => {});
  }
}

async function handle(
  channel: Channel,
  message: ConsumeMessage,
  handler: TaskHandler,
  onEvent: (event: WorkerEvent) => void,
): Promise<void> {
  const task: Task = {
    id: message.properties.messageId ?? `delivery-${message.fields.deliveryTag}`,
    body: message.content,
    redelivered: message.fields.redelivered,
  };
  try {
    await handler(task);
  } catch (error) {
    onEvent({
      type: "warning",
      message: `Task ${task.id} failed and goes back to the queue: ${describeError(error)}`,
    });
    settle(channel, message, task, "requeue", onEvent);
    return;
  }
  settle(channel, message, task, "ack", onEvent);
}

/**
 * The one place a delivery is acked or requeued. A delivery tag belongs to the channel that
 * delivered it; if that channel is gone the broker has already put the task back in the queue,
 * so it will be redelivered, and nothing may be sent for it on another channel.
 */
function settle(
  channel: Channel,
  message: ConsumeMessage,
  task: Task,
  how: "ack" | "requeue",
  onEvent: (event: WorkerEvent) => void,
): void {
  try {
    if (how === "ack") channel.ack(message);
    else channel.nack(message, false, true);
  } catch {
    onEvent({ type: "stale_delivery", id: task.id });
  }
}
