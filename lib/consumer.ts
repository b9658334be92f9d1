/**
 * The consume and ack path: fair dispatch with a prefetch limit, manual acks sent only after a
 * task's handler finished, and a graceful stop that lets tasks in flight finish.
 *
 * @module
 */

import type { Buffer } from "node:buffer";
import { type Channel, type ChannelModel, type ConsumeMessage, openTaskChannel } from "./amqp.ts";
import { AmqpError, describeError } from "./errors.ts";

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

/** Options for {@linkcode runWorker}. */
export interface RunWorkerOptions {
  /**
   * How many unacked tasks the broker may hand this worker at once. 1 is fair dispatch: a busy
   * worker gets no new task until it acked the last.
   * @default {1}
   */
  prefetch?: number;
  /**
   * Aborting it stops the worker gracefully: no new tasks, tasks in flight finish and are acked.
   * @default {undefined}
   */
  signal?: AbortSignal;
  /**
   * Called once consuming has started.
   * @default {() => {}}
   */
  onReady?: () => void;
  /**
   * Called with one line for things the operator should know (queue used as it is, a failed
   * task requeued, an ack that could not be sent).
   * @default {() => {}}
   */
  onWarning?: (message: string) => void;
}

/**
 * Consumes `queue` on `connection` and runs `handler` for every task, acking each after its
 * handler resolved. Resolves after a graceful stop; rejects when the connection or the consumer
 * is lost (unacked tasks then go back to the queue).
 */
export async function runWorker(
  connection: ChannelModel,
  queue: string,
  handler: TaskHandler,
  options: RunWorkerOptions = {},
): Promise<void> {
  const { prefetch = 1, signal, onReady = () => {}, onWarning = () => {} } = options;
  if (!Number.isInteger(prefetch) || prefetch < 1 || prefetch > 65535) {
    throw new RangeError(`Invalid prefetch "${prefetch}": expected a whole number from 1 to 65535`);
  }
  signal?.throwIfAborted();
  const { channel } = await openTaskChannel(connection, queue, { onWarning });
  await channel.prefetch(prefetch);

  const inFlight = new Set<Promise<void>>();
  const stop = Promise.withResolvers<void>();
  const onAbort = () => stop.resolve();
  const onClose = (error?: Error) => {
    const why = error ? describeError(error) : "closed";
    stop.reject(new AmqpError(`Lost the connection to the broker: ${why}`, { cause: error }));
  };
  const onChannelClose = () => {
    stop.reject(new AmqpError(`The broker closed the channel consuming "${queue}"`));
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  connection.on("close", onClose);
  channel.on("close", onChannelClose);

  const { consumerTag } = await channel.consume(queue, (message) => {
    if (message === null) {
      stop.reject(
        new AmqpError(`The broker cancelled the consumer of "${queue}" (queue deleted?)`),
      );
      return;
    }
    const work = handle(channel, message, handler, onWarning).finally(() => inFlight.delete(work));
    inFlight.add(work);
  }, { noAck: false });
  onReady();

  try {
    await stop.promise;
    // Graceful: take no new task, finish and ack those in flight, then close the channel.
    await channel.cancel(consumerTag);
    await Promise.all(inFlight);
    channel.off("close", onChannelClose);
    await channel.close().catch(() => {});
  } finally {
    signal?.removeEventListener("abort", onAbort);
    connection.off("close", onClose);
    channel.off("close", onChannelClose);
  }
}

async function handle(
  channel: Channel,
  message: ConsumeMessage,
  handler: TaskHandler,
  onWarning: (message: string) => void,
): Promise<void> {
  const task: Task = {
    id: message.properties.messageId ?? `delivery-${message.fields.deliveryTag}`,
    body: message.content,
    redelivered: message.fields.redelivered,
  };
  try {
    await handler(task);
  } catch (error) {
    onWarning(`Task ${task.id} failed and goes back to the queue: ${describeError(error)}`);
    settle(channel, message, task, "requeue", onWarning);
    return;
  }
  settle(channel, message, task, "ack", onWarning);
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
  onWarning: (message: string) => void,
): void {
  try {
    if (how === "ack") channel.ack(message);
    else channel.nack(message, false, true);
  } catch {
    onWarning(`Task ${task.id} finished after its channel closed; the broker will redeliver it`);
  }
}
