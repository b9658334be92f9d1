/**
 * The task queue: its name, type and retry policy, and the queues that follow from them (the
 * delay levels `<name>.delay.L00` to `L31`, where delayed tasks and retries wait for their time,
 * and the dead queue `<name>.dead`), in one object that the producer, the worker, `stats` and the
 * parked-task commands all use.
 *
 * @module
 */

import {
  type Channel,
  type ChannelOpener,
  type ConfirmChannel,
  declareDurable,
  declareRefused,
  openChannel,
  type QueueInfo,
} from "../amqp.ts";
import {
  DELAY_LEVELS,
  delayLevelName,
  delayLevelNames,
  type DelayRoute,
  delayRoute,
} from "./delays.ts";
import { replyCode } from "../broker/errors.ts";

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
   * quorum adds `x-queue-type: quorum`. The dead queue and the delay levels have the same type.
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
    const longest = delayLevelName(name, DELAY_LEVELS - 1);
    if (byteLength(longest) > MAX_NAME_BYTES) {
      const spare = byteLength(longest) - byteLength(name);
      throw new RangeError(
        `Invalid queue name "${name}": its queue "${longest}" would be longer than ${MAX_NAME_BYTES} bytes; a name may have at most ${
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

  /**
   * The queues where delayed tasks and retries wait, level 0 (1 ms) first: `<name>.delay.L00` to
   * `<name>.delay.L31` (2^31 ms), each with an exchange of the same name.
   */
  get delayQueues(): string[] {
    return delayLevelNames(this.name);
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

  /**
   * Where a task that waits `delayMs` is published: the level exchange of its highest bit and the
   * routing key that spells the delay in binary.
   *
   * @throws {RangeError} when `delayMs` is not a whole number from 1 to 2^32 - 1.
   *
   * @internal
   */
  delayRoute(delayMs: number): DelayRoute {
    return delayRoute(this.name, delayMs);
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
      throw declareRefused(this.name, error);
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
    return await this.#declareOrAdopt(connection, this.name, options);
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
    const { channel } = await this.#declareOrAdopt(connection, this.deadQueue, options);
    await channel.close().catch(() => {});
  }

  /**
   * Makes sure the delay levels exist (the task queue must), with the checks of
   * {@linkcode TaskQueue.open}: a level queue that would send tasks on at the wrong time or drop
   * them is refused. Level queues are of the task queue's type.
   *
   * @internal
   */
  async openDelays(
    connection: ChannelOpener,
    options: Omit<OpenOptions, "confirm"> = {},
  ): Promise<void> {
    // Loaded here, on first use: a sender of tasks due at once never declares a level.
    const { declareDelays } = await import("./delay_levels.ts");
    await declareDelays(connection, this.name, this.type, {
      allowLossy: this.allowLossy,
      onWarning: options.onWarning ?? (() => {}),
    });
  }

  /** The name, for messages. */
  toString(): string {
    return this.name;
  }

  // Most times the queue is as we declare it: one round trip. Only when the broker refuses our
  // arguments (another program declared the queue first) is the code that learns and judges what
  // the queue is loaded: a one-shot send does not pay for loading it.
  async #declareOrAdopt(
    connection: ChannelOpener,
    queue: string,
    options: OpenOptions,
  ): Promise<TaskChannel<Channel>> {
    const { confirm = false, onWarning = () => {} } = options;
    const channel = await openChannel(connection, confirm);
    try {
      return { channel, info: await declareDurable(channel, queue, this.#typeArguments()) };
    } catch (error) {
      await channel.close().catch(() => {});
      if (replyCode(error) !== 406) throw declareRefused(queue, error);
    }
    const { declareOrAdopt } = await import("./existing_queue.ts");
    return await declareOrAdopt(connection, queue, this.#typeArguments(), {
      confirm,
      onWarning,
      allowLossy: this.allowLossy,
      askedType: this.type,
    });
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
