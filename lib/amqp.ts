/**
 * The task queue: its declaration (the one place it is declared) and the channels the producer
 * and the worker use on it. Connecting lives in `connection.ts`, re-exported here.
 *
 * @module
 */

import type { Channel, ChannelModel, ConfirmChannel } from "amqplib";
import { AmqpError, brokerReason, replyCode } from "./errors.ts";

export type {
  Channel,
  ChannelModel,
  ConfirmChannel,
  ConsumeMessage,
  RecoveringChannelModel,
} from "amqplib";

export {
  connect,
  type ConnectOptions,
  parseBrokerList,
  readCaFile,
  reconnectDelay,
  type ReconnectInfo,
} from "./connection.ts";

/** The tutorial's queue name, shared with its Python and Java programs. */
export const DEFAULT_QUEUE = "task_queue";

/** What can open channels: a plain connection or a recovering one. */
export type ChannelOpener = Pick<ChannelModel, "createChannel" | "createConfirmChannel">;

/** What the broker said about the queue when it was declared. */
export interface QueueInfo {
  /** The queue's name. */
  queue: string;
  /** Messages ready for delivery. */
  messageCount: number;
  /** Consumers attached. */
  consumerCount: number;
}

/** The kinds of queue a task queue can be. */
export const QUEUE_TYPES = ["classic", "quorum"] as const;

/** `classic` (the tutorial's, on one node) or `quorum` (replicated across a cluster). */
export type QueueType = typeof QUEUE_TYPES[number];

/** Options for {@linkcode declareTaskQueue}. */
export interface DeclareTaskQueueOptions {
  /**
   * The queue type. Classic is declared exactly as the tutorial does (durable, no arguments),
   * so programs in other languages declaring `queue_declare('task_queue', durable=True)` share
   * it; quorum adds `x-queue-type: quorum`.
   * @default {"classic"}
   */
  type?: QueueType;
}

/**
 * Declares the task queue: the one place it is declared.
 *
 * @throws {AmqpError} with code 406 when the queue exists with other arguments; the channel is
 * then closed by the broker.
 */
export async function declareTaskQueue(
  channel: Channel,
  queue: string,
  options: DeclareTaskQueueOptions = {},
): Promise<QueueInfo> {
  const { type = "classic" } = options;
  validateQueueName(queue);
  try {
    return await channel.assertQueue(
      queue,
      type === "classic"
        ? { durable: true }
        : { durable: true, arguments: { "x-queue-type": type } },
    );
  } catch (error) {
    throw new AmqpError(`Cannot declare queue "${queue}": ${brokerReason(error)}`, {
      cause: error,
      code: replyCode(error),
    });
  }
}

/**
 * Checks a `--queue-type` value.
 *
 * @throws {TypeError} when it is not one of {@linkcode QUEUE_TYPES}.
 */
export function parseQueueType(value: string): QueueType {
  const type = QUEUE_TYPES.find((known) => known === value);
  if (!type) {
    throw new TypeError(`Invalid queue type "${value}": expected ${QUEUE_TYPES.join(" or ")}`);
  }
  return type;
}

// The broker names the type it has and the one asked for; "none" means a classic queue. RabbitMQ
// 3.x says "received the value 'quorum' of type 'longstr' but current is none", 4.x "received
// 'quorum' but current is 'classic'".
function typeMismatch(reason: string): { asked: string; existing: string } | undefined {
  const match =
    /'x-queue-type'.*received (none|(?:the value )?'(\w+)').* but current is (none|(?:the value )?'(\w+)')/
      .exec(reason);
  if (!match) return undefined;
  return { asked: match[2] ?? "classic", existing: match[4] ?? "classic" };
}

/**
 * Checks that `queue` is a queue name the broker accepts.
 *
 * @throws {RangeError} when it is empty, longer than 255 bytes, or starts with `amq.`.
 */
export function validateQueueName(queue: string): void {
  const bytes = new TextEncoder().encode(queue).length;
  if (bytes === 0 || bytes > 255) {
    throw new RangeError(`Invalid queue name "${queue}": must be 1 to 255 bytes`);
  }
  if (queue.startsWith("amq.")) {
    throw new RangeError(`Invalid queue name "${queue}": names starting with "amq." are reserved`);
  }
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
  const channel = await connection.createChannel();
  channel.on("error", () => {});
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

/** Options for {@linkcode openTaskChannel}. */
export interface OpenTaskChannelOptions {
  /**
   * Open a confirm channel, for publishing.
   * @default {false}
   */
  confirm?: boolean;
  /**
   * The queue type to declare.
   * @default {"classic"}
   */
  queueType?: QueueType;
  /**
   * Called once when the queue exists with other arguments and is used as it is.
   * @default {() => {}}
   */
  onWarning?: (message: string) => void;
}

/** A channel on which the task queue is known to exist. */
export interface TaskChannel<C extends Channel> {
  /** The open channel. */
  channel: C;
  /** The queue as the broker reported it. */
  info: QueueInfo;
}

/**
 * Opens a channel and makes sure the task queue exists. If the queue was made by another program
 * with other arguments (a TTL, another type), it is used as it is: our declaration is dropped for
 * a passive check, and `onWarning` says so. One round trip when the queue is as we declare it.
 */
export async function openTaskChannel(
  connection: ChannelOpener,
  queue: string,
  options: OpenTaskChannelOptions & { confirm: true },
): Promise<TaskChannel<ConfirmChannel>>;
export async function openTaskChannel(
  connection: ChannelOpener,
  queue: string,
  options?: OpenTaskChannelOptions,
): Promise<TaskChannel<Channel>>;
export async function openTaskChannel(
  connection: ChannelOpener,
  queue: string,
  options: OpenTaskChannelOptions = {},
): Promise<TaskChannel<Channel>> {
  const { confirm = false, queueType = "classic", onWarning = () => {} } = options;
  const open = async () => {
    const channel = confirm
      ? await connection.createConfirmChannel()
      : await connection.createChannel();
    // A channel the broker closes emits "error"; unheard, it would kill the process.
    channel.on("error", () => {});
    return channel;
  };
  const first = await open();
  try {
    return { channel: first, info: await declareTaskQueue(first, queue, { type: queueType }) };
  } catch (error) {
    if (!(error instanceof AmqpError) || error.code !== 406) throw error;
    const second = await open();
    try {
      const info = await second.checkQueue(queue);
      const reason = brokerReason(error.cause);
      const types = typeMismatch(reason);
      onWarning(
        types
          ? `Queue "${queue}" is a ${types.existing} queue, not ${types.asked} as asked; using it as it is`
          : `Queue "${queue}" exists with other arguments; using it as it is (${reason}). To have it declared as the tutorial does, delete it: rabbitmqctl delete_queue ${queue}`,
      );
      return { channel: second, info };
    } catch (checkError) {
      await second.close().catch(() => {});
      throw new AmqpError(`Cannot use queue "${queue}": ${brokerReason(checkError)}`, {
        cause: checkError,
        code: replyCode(checkError),
      });
    }
  }
}
