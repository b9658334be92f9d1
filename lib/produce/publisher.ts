/**
 * The publish path: a task is persistent, routed to the queue by the default exchange (a delayed
 * one to the queue's delay levels, see `topology/delays.ts`), and reported sent only once the
 * broker has confirmed it.
 *
 * @module
 */

import type { EventEmitter } from "node:events";
import {
  type ChannelOpener,
  type ConfirmChannel,
  type ConsumeMessage,
  DIRECT_REPLY_TO,
  publishPersistent,
  publishPersistentTo,
} from "../amqp.ts";
import { AmqpError, brokerReason } from "../broker/errors.ts";
import { checkSchedule, delayOf, type Schedule } from "../topology/delays.ts";
import { TASK_HEADERS } from "../topology/task_headers.ts";
import type { OpenOptions, TaskQueue } from "../topology/task_queue.ts";

/** Options for {@linkcode TaskPublisher.publish}. */
export interface PublishOptions {
  /**
   * The task id, carried as the AMQP `message-id`.
   * @default {crypto.randomUUID()}
   */
  id?: string;
  /**
   * How long to wait for the broker's confirm, in milliseconds.
   * @default {30000}
   */
  confirmTimeout?: number;
  /**
   * Stops waiting for the confirm; the task may still have reached the queue.
   * @default {undefined}
   */
  signal?: AbortSignal;
  /**
   * The AMQP `content-type` of the body.
   * @default {undefined}
   */
  contentType?: string;
  /**
   * AMQP headers for the task.
   * @default {undefined}
   */
  headers?: Record<string, unknown>;
  /**
   * Where the worker sends the task's outcome (set by {@linkcode Producer.sendAndWait}).
   * @default {undefined}
   */
  replyTo?: string;
  /**
   * Milliseconds before a worker may get the task (0 to 2^32 - 1, about 49.7 days): it is stored
   * in the queue's delay levels now and handed to a worker no earlier than that.
   * @default {0}
   */
  delay?: number;
  /**
   * The time before which no worker gets the task, instead of `delay`; a time already past means
   * at once.
   * @default {undefined}
   */
  at?: Date;
}

/** The AMQP properties a task may be given besides its id. */
export type TaskProperties = Pick<PublishOptions, "contentType" | "headers" | "replyTo">;

/** Options for {@linkcode TaskPublisher.open}. */
export interface OpenPublisherOptions extends Omit<OpenOptions, "confirm"> {
  /**
   * Called once each time the broker starts blocking publishers (memory or disk alarm), with
   * its reason. Confirm timeouts do not run while blocked: the task waits, it is not dropped.
   * @default {() => {}}
   */
  onBlocked?: (reason: string) => void;
}

/** The longest time a timer can wait: Deno's timers fire at once beyond it. */
const MAX_TIMER_MS = 2_147_483_647;

/** Anything that reports `blocked` / `unblocked` (a connection). */
type BlockingSource = Pick<EventEmitter, "on" | "off">;

interface Pending {
  arm(): void;
  disarm(): void;
}

/** Publishes tasks to one queue on a confirm channel. */
export class TaskPublisher {
  /** The queue tasks go to. */
  readonly queue: TaskQueue;
  #channel: ConfirmChannel;
  #returned = new Set<string>();
  #pending = new Set<Pending>();
  #blocked = false;
  #closeReason: string | undefined;
  #unlisten: () => void = () => {};
  #drained: PromiseWithResolvers<void> | undefined;
  #replies: Promise<void> | undefined;
  #delays: (() => Promise<void>) | undefined;
  #delaysReady: Promise<void> | undefined;

  /**
   * Wraps a confirm channel on which `queue` has been declared. `declareDelays` makes sure the
   * queue's delay levels exist before the first delayed task; without it delayed tasks fail.
   */
  constructor(channel: ConfirmChannel, queue: TaskQueue, declareDelays?: () => Promise<void>) {
    this.queue = queue;
    this.#channel = channel;
    this.#delays = declareDelays;
    // The broker sends basic.return before the confirm of the same message, so the confirm
    // callback can tell a routed task from an unroutable one.
    channel.on("return", (message) => {
      const id = message.properties.messageId;
      if (typeof id === "string") this.#returned.add(id);
    });
    // Why the broker closed the channel (a message over its size limit, say) is only told here.
    channel.on("error", (error: unknown) => this.#closeReason = brokerReason(error));
    // A closed channel never drains; let waiters go on and fail on their next publish.
    const drained = () => {
      this.#drained?.resolve();
      this.#drained = undefined;
    };
    channel.on("drain", drained);
    channel.on("close", drained);
  }

  /**
   * Resolves when the channel can take more: after a publish found its write buffer full, this
   * waits for amqplib's "drain" event. Bulk senders await it before each publish.
   */
  writable(): Promise<void> {
    return this.#drained?.promise ?? Promise.resolve();
  }

  /** Opens a confirm channel on `connection` and declares `queue`. */
  static async open(
    connection: ChannelOpener & BlockingSource,
    queue: TaskQueue,
    options: OpenPublisherOptions = {},
  ): Promise<TaskPublisher> {
    const { onBlocked = () => {}, ...channelOptions } = options;
    const { channel } = await queue.open(connection, { ...channelOptions, confirm: true });
    // Declared when the first delayed task is sent: tasks due at once need none of it.
    const publisher = new TaskPublisher(
      channel,
      queue,
      () => queue.openDelays(connection, channelOptions),
    );
    const blocked = (reason: string) => {
      publisher.#setBlocked(true);
      onBlocked(reason);
    };
    const unblocked = () => publisher.#setBlocked(false);
    connection.on("blocked", blocked);
    connection.on("unblocked", unblocked);
    publisher.#unlisten = () => {
      connection.off("blocked", blocked);
      connection.off("unblocked", unblocked);
    };
    return publisher;
  }

  /**
   * Makes sure the queue's delay levels exist, once per publisher (again after a failure). Call
   * it before {@linkcode TaskPublisher.send} with a schedule; `publish` does it itself.
   */
  prepareDelays(): Promise<void> {
    if (this.#delaysReady) return this.#delaysReady;
    if (!this.#delays) {
      return Promise.reject(new AmqpError("Cannot send delayed tasks: no delay levels declared"));
    }
    const ready = this.#delays();
    ready.catch(() => {
      if (this.#delaysReady === ready) this.#delaysReady = undefined;
    });
    this.#delaysReady = ready;
    return ready;
  }

  #setBlocked(blocked: boolean): void {
    this.#blocked = blocked;
    for (const pending of this.#pending) blocked ? pending.disarm() : pending.arm();
  }

  /**
   * Publishes one task and resolves with its id once the broker has confirmed it.
   *
   * @throws {AmqpError} when the broker nacks or returns the task, the channel closes first, or
   * no confirm arrives in time. The task must then be treated as not sent.
   */
  publish(body: string | Uint8Array, options: PublishOptions = {}): Promise<string> {
    const {
      id = crypto.randomUUID(),
      confirmTimeout = 30_000,
      signal,
      delay,
      at,
      ...extra
    } = options;
    if (!Number.isInteger(confirmTimeout) || confirmTimeout < 1 || confirmTimeout > MAX_TIMER_MS) {
      throw new RangeError(
        `Invalid confirm timeout "${confirmTimeout}": expected whole milliseconds from 1 to ${MAX_TIMER_MS}`,
      );
    }
    const schedule = checkSchedule({
      ...(delay === undefined ? {} : { delay }),
      ...(at === undefined ? {} : { at }),
    });
    signal?.throwIfAborted();
    // Copied: the caller may reuse its bytes before the confirm comes.
    const content = typeof body === "string" ? body : new Uint8Array(body);
    if (schedule) {
      return this.prepareDelays().then(() => {
        signal?.throwIfAborted();
        return this.#publish(content, id, confirmTimeout, signal, extra, schedule);
      });
    }
    return this.#publish(content, id, confirmTimeout, signal, extra, undefined);
  }

  #publish(
    content: string | Uint8Array,
    id: string,
    confirmTimeout: number,
    signal: AbortSignal | undefined,
    extra: TaskProperties,
    schedule: Schedule | undefined,
  ): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const pending: Pending = {
        arm: () => {
          clearTimeout(timer);
          timer = setTimeout(() => {
            finish(
              new AmqpError(
                `Task ${id} was not confirmed by the broker within ${confirmTimeout} ms`,
              ),
            );
          }, confirmTimeout);
        },
        disarm: () => clearTimeout(timer),
      };
      const finish = (error?: unknown) => {
        pending.disarm();
        this.#pending.delete(pending);
        signal?.removeEventListener("abort", onAbort);
        if (error === undefined) resolve(id);
        else reject(error);
      };
      const onAbort = () => finish(signal?.reason);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#pending.add(pending);
      if (!this.#blocked) pending.arm();
      this.send(content, id, finish, extra, schedule);
    });
  }

  /**
   * Publishes one task and calls `done` once the broker confirmed it (no argument) or it was not
   * sent (an {@linkcode AmqpError}). The bare publish path, with no promise and no timer per task,
   * for senders of many tasks that keep their own account (see `bulk_send.ts`). Bytes are sent
   * without a copy: leave them unchanged afterwards. With a `schedule` (checked by
   * `checkSchedule`), the task goes to the delay levels, which {@linkcode prepareDelays} must
   * have declared, due after the delay from now or at the time.
   */
  send(
    content: string | Uint8Array,
    id: string,
    done: (error?: AmqpError) => void,
    extra?: TaskProperties,
    schedule?: Schedule,
  ): void {
    const now = Date.now();
    const properties: TaskProperties & {
      messageId: string;
      timestamp: number;
      correlationId?: string;
    } = {
      messageId: id,
      timestamp: Math.floor(now / 1000),
      ...extra,
    };
    // The outcome comes back under the task's id.
    if (extra?.replyTo !== undefined) properties.correlationId = id;
    try {
      const delayMs = schedule === undefined ? 0 : delayOf(schedule, now);
      const route = delayMs > 0 ? this.queue.delayRoute(delayMs) : undefined;
      if (route) {
        properties.headers = {
          ...properties.headers,
          [TASK_HEADERS.dueAt]: new Date(now + delayMs).toISOString(),
        };
      }
      const confirmed = (error: unknown) => {
        if (error) done(this.#notSent(id, error));
        else if (this.#returned.delete(id)) {
          done(
            new AmqpError(
              route
                ? `Task ${id} was not sent: "${route.exchange}" routes it to no queue (a delay level is missing)`
                : `Task ${id} was not sent: no queue "${this.queue}" to route it to`,
            ),
          );
        } else done();
      };
      const room = route
        ? publishPersistentTo(
          this.#channel,
          route.exchange,
          route.routingKey,
          content,
          properties,
          confirmed,
        )
        : publishPersistent(this.#channel, this.queue.name, content, properties, confirmed);
      if (!room) this.#drained ??= Promise.withResolvers<void>();
    } catch (error) {
      done(this.#notSent(id, error));
    }
  }

  /**
   * Consumes the channel's direct reply-to address, where workers send the outcomes of tasks
   * published here with `replyTo` set to {@linkcode DIRECT_REPLY_TO}. Once per publisher.
   */
  async listenForReplies(onReply: (message: ConsumeMessage) => void): Promise<void> {
    this.#replies ??= this.#channel.consume(DIRECT_REPLY_TO, (message) => {
      if (message) onReply(message);
    }, { noAck: true }).then(() => {});
    await this.#replies;
  }

  /** Calls `listener` once the channel has closed (the broker closed it, or the connection dropped). */
  onClose(listener: () => void): void {
    this.#channel.once("close", listener);
  }

  /** True while the broker blocks publishers (a memory or disk alarm). */
  get blocked(): boolean {
    return this.#blocked;
  }

  /** Whether a publish found the channel's write buffer full and it has not drained yet. */
  get full(): boolean {
    return this.#drained !== undefined;
  }

  #notSent(id: string, error: unknown): AmqpError {
    const message = error instanceof Error ? error.message : String(error);
    const why = /nack/i.test(message)
      ? "the broker refused it (nack)"
      : this.#closeReason
      ? `the broker closed the channel: ${this.#closeReason}`
      : message;
    return new AmqpError(`Task ${id} was not sent: ${why}`, { cause: error });
  }

  /** Closes the channel; confirms still outstanding are failed by amqplib. */
  async close(): Promise<void> {
    this.#unlisten();
    await this.#channel.close().catch(() => {});
  }
}
