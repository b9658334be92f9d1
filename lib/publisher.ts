/**
 * The publish path: a task is persistent, routed to the queue by the default exchange, and
 * reported sent only once the broker has confirmed it.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import {
  type ChannelModel,
  type ConfirmChannel,
  openTaskChannel,
  type OpenTaskChannelOptions,
} from "./amqp.ts";
import { AmqpError } from "./errors.ts";

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
}

/** Publishes tasks to one queue on a confirm channel. */
export class TaskPublisher {
  /** The queue tasks go to. */
  readonly queue: string;
  #channel: ConfirmChannel;
  #returned = new Map<string, string>();

  /** Wraps a confirm channel on which `queue` has been declared. */
  constructor(channel: ConfirmChannel, queue: string) {
    this.queue = queue;
    this.#channel = channel;
    // The broker sends basic.return before the confirm of the same message, so the confirm
    // callback can tell a routed task from an unroutable one.
    channel.on("return", (message) => {
      const id = message.properties.messageId;
      if (typeof id === "string") {
        this.#returned.set(id, `${message.fields.routingKey}`);
      }
    });
  }

  /** Opens a confirm channel on `connection` and declares `queue`. */
  static async open(
    connection: ChannelModel,
    queue: string,
    options: OpenTaskChannelOptions = {},
  ): Promise<TaskPublisher> {
    const { channel } = await openTaskChannel(connection, queue, { ...options, confirm: true });
    return new TaskPublisher(channel, queue);
  }

  /**
   * Publishes one task and resolves with its id once the broker has confirmed it.
   *
   * @throws {AmqpError} when the broker nacks or returns the task, the channel closes first, or
   * no confirm arrives in time. The task must then be treated as not sent.
   */
  publish(body: string | Uint8Array, options: PublishOptions = {}): Promise<string> {
    const { id = crypto.randomUUID(), confirmTimeout = 30_000, signal } = options;
    if (!(confirmTimeout > 0)) {
      throw new RangeError(
        `Invalid confirm timeout "${confirmTimeout}": expected milliseconds > 0`,
      );
    }
    signal?.throwIfAborted();
    const content = typeof body === "string" ? Buffer.from(body) : Buffer.from(body);
    return new Promise<string>((resolve, reject) => {
      const finish = (error?: unknown) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        if (error === undefined) resolve(id);
        else reject(error);
      };
      const onAbort = () => finish(signal?.reason);
      const timer = setTimeout(() => {
        finish(
          new AmqpError(`Task ${id} was not confirmed by the broker within ${confirmTimeout} ms`),
        );
      }, confirmTimeout);
      signal?.addEventListener("abort", onAbort, { once: true });
      const properties = {
        persistent: true,
        mandatory: true,
        messageId: id,
        timestamp: Math.floor(Date.now() / 1000),
      };
      try {
        this.#channel.sendToQueue(this.queue, content, properties, (error) => {
          if (error) {
            const why = String(error?.message ?? error).includes("nack")
              ? "the broker refused it (nack)"
              : String(error?.message ?? error);
            finish(new AmqpError(`Task ${id} was not sent: ${why}`, { cause: error }));
          } else if (this.#returned.delete(id)) {
            finish(
              new AmqpError(`Task ${id} was not sent: no queue "${this.queue}" to route it to`),
            );
          } else {
            finish();
          }
        });
      } catch (error) {
        finish(
          new AmqpError(`Task ${id} was not sent: ${(error as Error).message}`, { cause: error }),
        );
      }
    });
  }

  /** Closes the channel; confirms still outstanding are failed by amqplib. */
  async close(): Promise<void> {
    await this.#channel.close().catch(() => {});
  }
}
