/**
 * Where failed tasks go: retry queues that hold a task for a delay and then dead-letter it back to
 * the task queue, and the dead queue `<queue>.dead` where a task is parked after its last try.
 * The task queue itself keeps the tutorial's declaration (durable, no arguments), so programs in
 * other languages can still declare it; everything here lives in queues of its own.
 *
 * Every move is publish-with-confirm first, ack second: a crash in between gives a duplicate,
 * never a loss.
 *
 * @module
 */

import type { Channel, ChannelModel, ConfirmChannel, Message } from "amqplib";
import { AmqpError } from "../broker/errors.ts";

/** Headers this project puts on tasks it retries or parks. */
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

/** The dead queue of `queue`. */
export function deadQueueName(queue: string): string {
  return `${queue}.dead`;
}

/** The retry queue of `queue` that holds tasks for `delayMs`. */
export function retryQueueName(queue: string, delayMs: number): string {
  return `${queue}.retry.${delayMs}ms`;
}

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

/** Options for {@linkcode retryDelay}. */
export interface RetryDelayOptions {
  /**
   * Delay before the first retry, in milliseconds; doubled for each further one.
   * @default {1000}
   */
  base?: number;
  /**
   * The longest delay, in milliseconds.
   * @default {600000}
   */
  cap?: number;
}

/** How long to wait after failed try number `attempt` (1, 2, ...). */
export function retryDelay(attempt: number, options: RetryDelayOptions = {}): number {
  const { base = 1000, cap = 600_000 } = options;
  if (!Number.isInteger(attempt) || attempt < 1) {
    throw new RangeError(`Invalid attempt "${attempt}": expected a whole number of at least 1`);
  }
  return Math.min(cap, base * 2 ** (attempt - 1));
}

/** Options for {@linkcode declareDeadQueue}. */
export interface DeclareDeadQueueOptions {
  /**
   * The queue type, the same as the task queue's.
   * @default {"classic"}
   */
  type?: "classic" | "quorum";
}

/** Declares `<queue>.dead`: durable, of the task queue's type. */
export async function declareDeadQueue(
  channel: Channel,
  queue: string,
  options: DeclareDeadQueueOptions = {},
): Promise<string> {
  const { type = "classic" } = options;
  const name = deadQueueName(queue);
  await channel.assertQueue(
    name,
    type === "classic" ? { durable: true } : { durable: true, arguments: { "x-queue-type": type } },
  );
  return name;
}

/**
 * Declares the retry queue for `delayMs`: its messages expire after the delay and are
 * dead-lettered, through the default exchange, back to `queue`. One queue per delay, so every
 * message in it has the same TTL and none waits behind a longer one. An idle retry queue deletes
 * itself an hour after its last use; by then everything in it has long expired back.
 */
export async function declareRetryQueue(
  channel: Channel,
  queue: string,
  delayMs: number,
): Promise<string> {
  const name = retryQueueName(queue, delayMs);
  await channel.assertQueue(name, {
    durable: true,
    arguments: {
      "x-message-ttl": delayMs,
      "x-dead-letter-exchange": "",
      "x-dead-letter-routing-key": queue,
      "x-expires": delayMs + 3_600_000,
    },
  });
  return name;
}

/**
 * The properties a moved task keeps. Not `expiration`: a parked task must not expire from the dead
 * queue; not `userId`: the broker checks it against the mover's own user.
 */
const CARRIED_PROPERTIES = [
  "messageId",
  "timestamp",
  "contentType",
  "contentEncoding",
  "correlationId",
  "replyTo",
  "type",
  "appId",
  "priority",
] as const;

/**
 * Publishes a copy of `message` to `target` with extra `headers`, persistent and mandatory, and
 * resolves once the broker confirmed it. The caller acks the original only after that.
 *
 * @throws {AmqpError} when the broker nacks or returns the copy, or the channel closes first.
 */
export function republish(
  channel: ConfirmChannel,
  target: string,
  message: Pick<Message, "content" | "properties">,
  headers: Record<string, unknown>,
): Promise<void> {
  const { properties } = message;
  const options: Record<string, unknown> = {
    persistent: true,
    mandatory: true,
    headers: { ...properties.headers, ...headers },
  };
  for (const key of CARRIED_PROPERTIES) {
    if (properties[key] !== undefined) options[key] = properties[key];
  }
  return new Promise((resolve, reject) => {
    let returned = false;
    const onReturn = (returnedMessage: Message) => {
      if (returnedMessage.properties.messageId === properties.messageId) returned = true;
    };
    channel.on("return", onReturn);
    const done = (error?: unknown) => {
      channel.off("return", onReturn);
      if (error) {
        reject(
          new AmqpError(`Cannot move task to "${target}": ${describe(error)}`, { cause: error }),
        );
      } else if (returned) reject(new AmqpError(`Cannot move task to "${target}": no such queue`));
      else resolve();
    };
    try {
      channel.sendToQueue(target, message.content, options, (error) => done(error ?? undefined));
    } catch (error) {
      done(error);
    }
  });
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The confirm channel failed tasks are moved on. A failed move (the broker refusing a retry
 * queue, say) closes it; the next move opens a new one, and the consuming channel is untouched.
 */
export class Mover {
  #model: ChannelModel;
  #open: Promise<ConfirmChannel> | undefined;

  /** Moves go over channels of `model`. */
  constructor(model: ChannelModel) {
    this.#model = model;
  }

  /** The open confirm channel, or a new one. */
  channel(): Promise<ConfirmChannel> {
    if (this.#open) return this.#open;
    const opening = this.#model.createConfirmChannel().then((channel) => {
      channel.on("error", () => {});
      channel.on("close", () => {
        if (this.#open === opening) this.#open = undefined;
      });
      return channel;
    });
    opening.catch(() => {
      if (this.#open === opening) this.#open = undefined;
    });
    this.#open = opening;
    return opening;
  }

  /** Closes the channel, if one is open. */
  async close(): Promise<void> {
    const open = this.#open;
    this.#open = undefined;
    await open?.then((channel) => channel.close()).catch(() => {});
  }
}
