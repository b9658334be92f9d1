/**
 * The task queue: its name, type and retry policy, and the queues that follow from them (one
 * retry queue per delay of the schedule, and the dead queue `<name>.dead`), in one object that
 * the producer, the worker, `stats` and the parked-task commands all use.
 *
 * @module
 */

import {
  type Channel,
  type ChannelOpener,
  type ConfirmChannel,
  declareDurable,
  type QueueInfo,
} from "../amqp.ts";
import { declareOrAdopt } from "./existing_queue.ts";
import { accessRefused, AmqpError, brokerReason, replyCode } from "../broker/errors.ts";

/**
 * The tutorial's queue name, shared with its Python and Java programs.
 *
 * @example
 * ```ts
 * import { DEFAULT_QUEUE, TaskQueue } from "@workqueue/rabbitmq";
 *
 * console.log(new TaskQueue().name === DEFAULT_QUEUE); // true: "task_queue"
 * ```
 */
export const DEFAULT_QUEUE = "task_queue";

/**
 * The kinds of queue a task queue can be.
 *
 * @example List the choices in a usage message
 * ```ts
 * import { QUEUE_TYPES } from "@workqueue/rabbitmq";
 *
 * console.log(`--queue-type ${QUEUE_TYPES.join("|")}`); // "--queue-type classic|quorum"
 * ```
 */
export const QUEUE_TYPES = ["classic", "quorum"] as const;

/**
 * `classic` (the tutorial's, on one node) or `quorum` (replicated across a cluster).
 *
 * @example
 * ```ts
 * import { type QueueType, TaskQueue } from "@workqueue/rabbitmq";
 *
 * const type: QueueType = "quorum";
 * const queue = new TaskQueue("orders", { type });
 * console.log(queue.type); // "quorum"
 * ```
 */
export type QueueType = typeof QUEUE_TYPES[number];

/** The longest queue name the broker takes, in bytes. */
const MAX_NAME_BYTES = 255;

/**
 * Options for {@linkcode TaskQueue}.
 *
 * @example Five tries, 2 s apart at first, never more than a minute apart
 * ```ts
 * import { TaskQueue, type TaskQueueOptions } from "@workqueue/rabbitmq";
 *
 * const policy: TaskQueueOptions = { maxRetries: 4, retryDelay: 2000, maxRetryDelay: 60_000 };
 * console.log(new TaskQueue("reports", policy).retrySchedule); // [2000, 4000, 8000, 16000]
 * ```
 */
export interface TaskQueueOptions {
  /**
   * The queue type. Classic is declared exactly as the tutorial does (durable, no arguments), so
   * programs in other languages declaring `queue_declare('task_queue', durable=True)` share it;
   * quorum adds `x-queue-type: quorum`. The dead queue has the same type.
   * @default {"classic"}
   */
  type?: QueueType;
  /**
   * Retries of a failed task after its first try; then it is parked in the dead queue.
   * @default {3}
   */
  maxRetries?: number;
  /**
   * Milliseconds before the first retry, doubled for each further one up to `maxRetryDelay`.
   * @default {1000}
   */
  retryDelay?: number;
  /**
   * The longest wait between two tries, in milliseconds.
   * @default {600000}
   */
  maxRetryDelay?: number;
  /**
   * Use a task queue or dead queue that another program declared so that it can drop tasks (a
   * TTL, a length limit that drops, auto-delete, not durable) instead of refusing it. Tasks may
   * then be lost: only for queues whose losses are intended.
   * @default {false}
   */
  allowLossy?: boolean;
}

/** A channel on which the task queue is known to exist. */
export interface TaskChannel<C extends Channel> {
  /** The open channel. */
  channel: C;
  /** The queue as the broker reported it. */
  info: QueueInfo;
}

/** Options for {@linkcode TaskQueue.open}. */
export interface OpenOptions {
  /**
   * Open a confirm channel, for publishing.
   * @default {false}
   */
  confirm?: boolean;
  /**
   * Called once when the queue exists with other arguments and is used as it is.
   * @default {() => {}}
   */
  onWarning?: (message: string) => void;
}

/**
 * A task queue and its policy: where tasks wait, how often and how long apart a failed one is
 * tried again, and where it is parked after its last try.
 *
 * @example Describe the queue once, use it everywhere
 * ```ts
 * import { TaskQueue } from "@workqueue/rabbitmq";
 *
 * const queue = new TaskQueue("images", { type: "quorum", maxRetries: 2, retryDelay: 5000 });
 * console.log(queue.deadQueue); // "images.dead"
 * console.log(queue.retrySchedule); // [5000, 10000]
 * ```
 */
export class TaskQueue {
  /** The queue's name. */
  readonly name: string;
  /** The queue's type. */
  readonly type: QueueType;
  /** Retries after the first try. */
  readonly maxRetries: number;
  /** Milliseconds before the first retry. */
  readonly retryDelay: number;
  /** The longest wait between two tries, in milliseconds. */
  readonly maxRetryDelay: number;
  /** Whether a queue that can drop tasks is used rather than refused. */
  readonly allowLossy: boolean;

  /**
   * Describes the task queue `name`; nothing is declared until it is used.
   *
   * @throws {RangeError} when the name, or one of the names derived from it, is not one the
   * broker takes, or a number is out of range.
   * @throws {TypeError} when the type is not one of {@linkcode QUEUE_TYPES}.
   */
  constructor(name: string = DEFAULT_QUEUE, options: TaskQueueOptions = {}) {
    const {
      type = "classic",
      maxRetries = 3,
      retryDelay = 1000,
      maxRetryDelay = 600_000,
      allowLossy = false,
    } = options;
    parseQueueType(type);
    checkWhole("maxRetries", maxRetries, 0, 1000);
    checkWhole("maxRetryDelay", maxRetryDelay, 1, 2_147_483_647);
    checkWhole("retryDelay", retryDelay, 1, maxRetryDelay);
    this.name = name;
    this.type = type;
    this.maxRetries = maxRetries;
    this.retryDelay = retryDelay;
    this.maxRetryDelay = maxRetryDelay;
    this.allowLossy = allowLossy;
    checkName(name);
    const derived = [this.deadQueue, ...this.retryQueues];
    const longest = derived.reduce((a, b) => byteLength(b) > byteLength(a) ? b : a);
    if (byteLength(longest) > MAX_NAME_BYTES) {
      const spare = byteLength(longest) - byteLength(name);
      throw new RangeError(
        `Invalid queue name "${name}": its queue "${longest}" would be longer than ${MAX_NAME_BYTES} bytes; with this retry policy a name may have at most ${
          MAX_NAME_BYTES - spare
        } bytes`,
      );
    }
  }

  /** Where a task is parked after its last try: `<name>.dead`. */
  get deadQueue(): string {
    return `${this.name}.dead`;
  }

  /** How many times a task is tried at most. */
  get maxTries(): number {
    return this.maxRetries + 1;
  }

  /** The waits before retry 1, 2, ... `maxRetries`, in milliseconds. */
  get retrySchedule(): number[] {
    return Array.from({ length: this.maxRetries }, (_, i) => this.retryDelayAfter(i + 1));
  }

  /** The retry queues this policy uses, shortest delay first. */
  get retryQueues(): string[] {
    return [...new Set(this.retrySchedule)].map((delay) => this.retryQueue(delay));
  }

  /**
   * How long to wait after failed try number `attempt` (1, 2, ...).
   *
   * @throws {RangeError} when `attempt` is not a whole number of at least 1.
   */
  retryDelayAfter(attempt: number): number {
    if (!Number.isInteger(attempt) || attempt < 1) {
      throw new RangeError(`Invalid attempt "${attempt}": expected a whole number of at least 1`);
    }
    return Math.min(this.maxRetryDelay, this.retryDelay * 2 ** (attempt - 1));
  }

  /** The retry queue that holds tasks for `delayMs`: `<name>.retry.<delayMs>ms`. */
  retryQueue(delayMs: number): string {
    return `${this.name}.retry.${delayMs}ms`;
  }

  /** The delay of one of this queue's retry queues, or undefined for any other name. */
  retryDelayOf(queue: string): number | undefined {
    const prefix = `${this.name}.retry.`;
    if (!queue.startsWith(prefix)) return undefined;
    const match = /^(\d+)ms$/.exec(queue.slice(prefix.length));
    return match ? Number(match[1]) : undefined;
  }

  /**
   * Declares the task queue itself.
   *
   * @throws {AmqpError} with code 406 when the queue exists with other arguments; the channel is
   * then closed by the broker.
   *
   * @internal
   */
  async declare(channel: Channel): Promise<QueueInfo> {
    try {
      return await declareDurable(channel, this.name, this.#typeArguments());
    } catch (error) {
      throw new AmqpError(`Cannot declare queue "${this.name}": ${brokerReason(error)}`, {
        cause: error,
        code: replyCode(error),
      });
    }
  }

  /**
   * Declares the dead queue: durable, of the task queue's type.
   *
   * @internal
   */
  async declareDead(channel: Channel): Promise<string> {
    await declareDurable(channel, this.deadQueue, this.#typeArguments());
    return this.deadQueue;
  }

  /**
   * Declares the retry queue for `delayMs`: its messages expire after the delay and are
   * dead-lettered, through the default exchange, back to the task queue. One queue per delay, so
   * every message in it has the same TTL and none waits behind a longer one. An idle retry queue
   * deletes itself an hour after its last use; by then everything in it has long expired back.
   *
   * @internal
   */
  async declareRetry(channel: Channel, delayMs: number): Promise<string> {
    const name = this.retryQueue(delayMs);
    try {
      await declareDurable(channel, name, {
        "x-message-ttl": delayMs,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": this.name,
        "x-expires": delayMs + 3_600_000,
      });
    } catch (error) {
      // With a dead-letter target the broker checks configure and read on the queue, and its
      // refusal does not say which.
      const reason = accessRefused(error, { queue: ["configure", "read"] });
      if (reason === undefined) throw error;
      throw new AmqpError(`Cannot declare queue "${name}": ${reason}`, {
        cause: error,
        code: replyCode(error),
      });
    }
    return name;
  }

  /**
   * Opens a channel and makes sure the task queue exists. If the queue was made by another
   * program with other arguments (a TTL, another type), it is used as it is: our declaration is
   * dropped for a passive check, and `onWarning` says so. One round trip when the queue is as we
   * declare it.
   *
   * @internal
   */
  async open(
    connection: ChannelOpener,
    options: OpenOptions & { confirm: true },
  ): Promise<TaskChannel<ConfirmChannel>>;
  /**
   * Opens a plain channel, as the other `open`, and makes sure the task queue exists.
   *
   * @internal
   */
  async open(connection: ChannelOpener, options?: OpenOptions): Promise<TaskChannel<Channel>>;
  async open(connection: ChannelOpener, options: OpenOptions = {}): Promise<TaskChannel<Channel>> {
    const { confirm = false, onWarning = () => {} } = options;
    return await declareOrAdopt(connection, this.name, this.#typeArguments(), {
      confirm,
      onWarning,
      allowLossy: this.allowLossy,
      askedType: this.type,
    });
  }

  /**
   * Makes sure the dead queue exists on a channel of its own, closed again, with the checks of
   * {@linkcode TaskQueue.open}: a dead queue that could drop parked tasks is refused.
   *
   * @internal
   */
  async openDead(
    connection: ChannelOpener,
    options: Omit<OpenOptions, "confirm"> = {},
  ): Promise<void> {
    const { channel } = await declareOrAdopt(connection, this.deadQueue, this.#typeArguments(), {
      onWarning: options.onWarning ?? (() => {}),
      allowLossy: this.allowLossy,
      askedType: this.type,
    });
    await channel.close().catch(() => {});
  }

  /** The name, for messages. */
  toString(): string {
    return this.name;
  }

  #typeArguments(): Record<string, unknown> | undefined {
    return this.type === "classic" ? undefined : { "x-queue-type": this.type };
  }
}

/**
 * Checks a queue type given as text (`--queue-type`).
 *
 * @throws {TypeError} when it is not one of {@linkcode QUEUE_TYPES}.
 *
 * @example The queue type from the environment
 * ```ts
 * import { parseQueueType, TaskQueue } from "@workqueue/rabbitmq";
 *
 * const type = parseQueueType("quorum"); // e.g. Deno.env.get("TASK_QUEUE_TYPE") ?? "classic"
 * const queue = new TaskQueue("orders", { type });
 * ```
 */
export function parseQueueType(value: string): QueueType {
  const type = QUEUE_TYPES.find((known) => known === value);
  if (!type) {
    throw new TypeError(`Invalid queue type "${value}": expected ${QUEUE_TYPES.join(" or ")}`);
  }
  return type;
}

function checkName(queue: string): void {
  const bytes = byteLength(queue);
  if (bytes === 0 || bytes > MAX_NAME_BYTES) {
    throw new RangeError(`Invalid queue name "${queue}": must be 1 to ${MAX_NAME_BYTES} bytes`);
  }
  if (queue.startsWith("amq.")) {
    throw new RangeError(`Invalid queue name "${queue}": names starting with "amq." are reserved`);
  }
}

function byteLength(text: string): number {
  return new TextEncoder().encode(text).length;
}

function checkWhole(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(
      `Invalid ${name} "${value}": expected a whole number from ${min} to ${max}`,
    );
  }
}
