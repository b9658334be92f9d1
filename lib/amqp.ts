/**
 * The AMQP primitives, each in one place: durable declare, persistent publish, prefetch (qos)
 * and manual consume, ack and requeue. Which queues exist and why is the task queue's business
 * (`topology/task_queue.ts`); connecting is `broker/connection.ts`.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import type {
  Channel,
  ChannelModel,
  ConfirmChannel,
  ConsumeMessage,
  Message,
  Options,
} from "amqplib";
import { AmqpError, brokerReason, replyCode } from "./broker/errors.ts";

export type {
  Channel,
  ChannelModel,
  ConfirmChannel,
  ConsumeMessage,
  Message,
  RecoveringChannelModel,
} from "amqplib";

/** What can open channels: a plain connection or a recovering one. */
export type ChannelOpener = Pick<ChannelModel, "createChannel" | "createConfirmChannel">;

/** What the broker said about a queue when it was declared or checked. */
export interface QueueInfo {
  /** The queue's name. */
  queue: string;
  /** Messages ready for delivery. */
  messageCount: number;
  /** Consumers attached. */
  consumerCount: number;
}

/**
 * Opens a channel (a confirm channel with `confirm`). A channel the broker closes emits "error";
 * unheard, that would kill the process, so a listener is attached at once.
 */
export async function openChannel(
  connection: ChannelOpener,
  confirm: true,
): Promise<ConfirmChannel>;
export async function openChannel(connection: ChannelOpener, confirm?: boolean): Promise<Channel>;
export async function openChannel(connection: ChannelOpener, confirm = false): Promise<Channel> {
  const channel = confirm
    ? await connection.createConfirmChannel()
    : await connection.createChannel();
  channel.on("error", () => {});
  return channel;
}

/**
 * Declares a durable queue: the one `queue.declare` of the project. Without `args` it is the
 * tutorial's declaration exactly, so programs in other languages share the queue.
 */
export function declareDurable(
  channel: Channel,
  queue: string,
  args?: Record<string, unknown>,
): Promise<QueueInfo> {
  return channel.assertQueue(
    queue,
    args === undefined ? { durable: true } : { durable: true, arguments: args },
  );
}

/** The error for a refused {@linkcode declareDurable} of `queue`: the broker's reason and code. */
export function declareRefused(queue: string, error: unknown): AmqpError {
  return new AmqpError(`Cannot declare queue "${queue}": ${brokerReason(error)}`, {
    cause: error,
    code: replyCode(error),
  });
}

/** A passive declare: what `queue` holds, creating nothing. Fails (and closes the channel) when it does not exist. */
export function checkDeclared(channel: Channel, queue: string): Promise<QueueInfo> {
  return channel.checkQueue(queue);
}

/**
 * A queue's ready messages and consumers, from a passive declare: nothing is created. On a
 * channel of its own, since a failed check closes its channel. Null when the queue does not exist.
 *
 * @throws {AmqpError} when the broker refuses the check for another reason (access refused).
 */
export async function checkQueue(
  connection: ChannelOpener,
  queue: string,
): Promise<QueueInfo | null> {
  const channel = await openChannel(connection);
  try {
    return await channel.checkQueue(queue);
  } catch (error) {
    if (replyCode(error) === 404) return null;
    throw new AmqpError(`Cannot check queue "${queue}": ${brokerReason(error)}`, {
      cause: error,
      code: replyCode(error),
    });
  } finally {
    await channel.close().catch(() => {});
  }
}

/**
 * Publishes `content` to `queue` through the default exchange, persistent and mandatory (an
 * unroutable message comes back as a return, before its confirm), and calls `done` with null
 * when the broker confirmed it, or with the error when it refused it. Returns false when the
 * channel's write buffer is full: wait for its "drain" event before publishing more. Bytes are
 * sent without a copy; `properties` is used as it is (no copy per message), with `persistent` and
 * `mandatory` set on it.
 */
export function publishPersistent(
  channel: ConfirmChannel,
  queue: string,
  content: string | Uint8Array,
  properties: Options.Publish,
  done: (error: unknown) => void,
): boolean {
  return publishPersistentTo(channel, "", queue, content, properties, done);
}

/**
 * Publishes `content` to `exchange` with `routingKey`, as {@linkcode publishPersistent} does to a
 * queue: persistent, mandatory, `done` called on the confirm.
 */
export function publishPersistentTo(
  channel: ConfirmChannel,
  exchange: string,
  routingKey: string,
  content: string | Uint8Array,
  properties: Options.Publish,
  done: (error: unknown) => void,
): boolean {
  properties.persistent = true;
  properties.mandatory = true;
  return channel.publish(
    exchange,
    routingKey,
    // One copy at most: a string is encoded once, bytes are wrapped, not copied.
    typeof content === "string"
      ? Buffer.from(content)
      : Buffer.isBuffer(content)
      ? content
      : Buffer.from(content.buffer, content.byteOffset, content.byteLength),
    properties,
    done,
  );
}

/**
 * Publishes a reply to a direct reply-to address (`amq.rabbitmq.reply-to.…`): not persistent,
 * not mandatory, no confirm awaited. The address lives only as long as its consumer's channel.
 */
export function publishReply(
  channel: Channel,
  replyTo: string,
  content: Uint8Array,
  properties: Options.Publish,
): void {
  channel.sendToQueue(
    replyTo,
    Buffer.from(content.buffer, content.byteOffset, content.byteLength),
    properties,
  );
}

/** The direct reply-to pseudo-queue: consumed (no ack) before publishing requests on a channel. */
export const DIRECT_REPLY_TO = "amq.rabbitmq.reply-to";

/** Limits the unacked deliveries the broker hands this channel's consumers (basic.qos). */
export function setPrefetch(channel: Channel, count: number): Promise<unknown> {
  return channel.prefetch(count);
}

/**
 * Consumes `queue` with manual acks: every delivery stays the broker's until it is acked with
 * {@linkcode ack}. `onMessage` gets null when the broker cancels the consumer.
 */
export async function consumeManual(
  channel: Channel,
  queue: string,
  onMessage: (message: ConsumeMessage | null) => void,
): Promise<string> {
  const { consumerTag } = await channel.consume(queue, onMessage, { noAck: false });
  return consumerTag;
}

/** Acks `message`, and with `upTo` every earlier delivery on the channel as well. */
export function ack(channel: Channel, message: Message, upTo = false): void {
  channel.ack(message, upTo);
}

/** Gives `message` back to the broker, which delivers it again (to this or another consumer). */
export function requeue(channel: Channel, message: ConsumeMessage): void {
  channel.nack(message, false, true);
}
