/**
 * The bench's own connection to the broker: it makes each measurement's queue, looks at it, and
 * deletes it. Plain amqplib, so that it measures nothing of the project's code.
 *
 * @module
 */

import { type ChannelModel, type ConfirmChannel, connect } from "amqplib";

/** A queue name for one measurement: `bench_<label>_<random>`, never used before. */
export function benchQueue(label: string): string {
  return `bench_${label}_${crypto.randomUUID().slice(0, 8)}`;
}

/** The bench's connection and what it does with queues. */
export class Broker implements AsyncDisposable {
  /** The broker's version, as it announced itself ("3.10.8"). */
  readonly version: string;
  /** The broker's platform ("Erlang/OTP 25.2.3"). */
  readonly platform: string;
  #connection: ChannelModel;
  #created = new Set<string>();

  /** Wraps an open connection; {@linkcode Broker.open} connects. */
  constructor(connection: ChannelModel) {
    this.#connection = connection;
    const properties = connection.connection.serverProperties;
    this.version = String(properties.version ?? "unknown");
    this.platform = String(properties.platform ?? "unknown");
  }

  /** Connects to the broker at `url`. */
  static async open(url: string): Promise<Broker> {
    const connection = await connect(url, { noDelay: true });
    connection.on("error", () => {});
    return new Broker(connection);
  }

  /**
   * Declares `queue` as the tutorial does (durable, no arguments) and remembers to delete it, and
   * the `<queue>.dead` queue the worker declares beside it, on {@linkcode Broker.deleteAll}.
   */
  async declare(queue: string): Promise<void> {
    this.#created.add(queue);
    await this.#withChannel((channel) => channel.assertQueue(queue, { durable: true }));
  }

  /** Messages ready in `queue` (a passive declare; unacked messages are not counted). */
  ready(queue: string): Promise<number> {
    return this.#withChannel(async (channel) => (await channel.checkQueue(queue)).messageCount);
  }

  /** A confirm channel of the bench's own, for publishing at a chosen rate. */
  async confirmChannel(): Promise<ConfirmChannel> {
    const channel = await this.#connection.createConfirmChannel();
    channel.on("error", () => {});
    return channel;
  }

  /** Deletes `queue` and its dead queue, as soon as a measurement is done with them. */
  async delete(queue: string): Promise<void> {
    this.#created.delete(queue);
    await this.#withChannel(async (channel) => {
      await channel.deleteQueue(queue);
      await channel.deleteQueue(`${queue}.dead`);
    });
  }

  /** Deletes every queue declared through {@linkcode Broker.declare} and not deleted yet. */
  async deleteAll(): Promise<void> {
    for (const queue of [...this.#created]) await this.delete(queue);
  }

  async #withChannel<T>(use: (channel: ConfirmChannel) => Promise<T>): Promise<T> {
    // A failed operation closes its channel, so each gets its own.
    const channel = await this.confirmChannel();
    try {
      return await use(channel);
    } finally {
      await channel.close().catch(() => {});
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.deleteAll().catch(() => {});
    await this.#connection.close().catch(() => {});
  }
}
