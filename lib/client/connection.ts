/**
 * The library's front door: a connection to the broker that makes producers and workers, and
 * re-establishes itself (and their consumers) when it drops.
 *
 * @module
 */

import type { RecoveringChannelModel } from "../amqp.ts";
import { type ChannelModel } from "../amqp.ts";
import {
  connect as connectBroker,
  type ConnectOptions as BrokerOptions,
  type ReconnectInfo,
} from "../broker/connection.ts";
import { describeError } from "../broker/errors.ts";
import { Emitter, type EventMap } from "../observe/emitter.ts";
import { Producer, type ProducerOptions } from "../produce/producer.ts";
import { TaskQueue } from "../topology/task_queue.ts";
import type { TaskHandler } from "../consume/task.ts";
import { Worker, type WorkerOptions } from "../consume/worker.ts";

/** Options for {@linkcode connect}. */
export type ConnectOptions = Omit<BrokerOptions, "setup" | "onConnected" | "onReconnecting">;

/** What happens to a connection. */
export type ConnectionEvent =
  | { type: "connection_lost"; reason: string }
  | ({ type: "reconnecting" } & ReconnectInfo)
  | { type: "reconnected"; url: string };

/**
 * Connects to the broker at `url` (or the first that answers of a comma-separated list of a
 * cluster's nodes). With `recover` (the default here) a dropped connection is made again, forever,
 * with backoff, and the workers on it consume again.
 *
 * @throws {TypeError} when `url` is not an amqp:// or amqps:// URL.
 * @throws {AmqpError} when the broker cannot be reached or refuses the connection; the message
 * names the address without credentials.
 *
 * @example Connect, send, close
 * ```ts ignore
 * import { connect } from "./mod.ts";
 *
 * const connection = await connect(Deno.env.get("AMQP_URL") ?? "amqp://localhost");
 * try {
 *   const producer = await connection.createProducer("task_queue");
 *   await producer.send("Hello World!");
 * } finally {
 *   await connection.close();
 * }
 * ```
 */
export async function connect(url: string, options: ConnectOptions = {}): Promise<Connection> {
  const connection = new Connection();
  await connection.open(url, options);
  return connection;
}

/**
 * A connection to the broker, made by {@linkcode connect}: it makes producers and workers.
 */
export class Connection {
  #model: RecoveringChannelModel | undefined;
  #live: ChannelModel | undefined;
  #workers = new Set<Worker>();
  #producers = new Set<Producer>();
  #emitter = new Emitter<ConnectionEvent>();
  #connectedOnce = false;
  #closing = false;

  /** Made by {@linkcode connect}; not meant to be called directly. */
  constructor() {}

  /** Connects; called once by {@linkcode connect}. */
  async open(url: string, options: ConnectOptions): Promise<void> {
    const { recover = true, ...rest } = options;
    this.#model = await connectBroker(url, {
      ...rest,
      recover,
      setup: async (model) => {
        this.#live = model;
        for (const worker of this.#workers) await worker.attach(model);
      },
      onReconnecting: (info) => this.#tell({ type: "reconnecting", ...info }),
      onConnected: (url) => {
        if (this.#connectedOnce) this.#tell({ type: "reconnected", url });
      },
    });
    this.#connectedOnce = true;
    this.#model.on("disconnect", (error: unknown) => {
      this.#live = undefined;
      if (this.#closing) return;
      const reason = describeError(error);
      this.#emitter.emit({ type: "connection_lost", reason });
      for (const worker of this.#workers) worker.detach(reason);
    });
  }

  /**
   * Calls `listener` for every event of `type` (`"*"` for all of them); returns a function that
   * removes it.
   */
  on<K extends ConnectionEvent["type"]>(
    type: K,
    listener: (event: EventMap<ConnectionEvent>[K]) => void,
  ): () => void;
  /** Calls `listener` for every event; returns a function that removes it. */
  on(type: "*", listener: (event: ConnectionEvent) => void): () => void;
  on(type: string, listener: (event: never) => void): () => void {
    return this.#emitter.on(type as "*", listener as (event: ConnectionEvent) => void);
  }

  /**
   * A producer for `queue` (a {@linkcode TaskQueue}, or a name for a classic queue with the
   * default policy). Resolves once the queue is declared, so a queue the broker refuses is an
   * error here rather than at the first send.
   *
   * @throws {AmqpError} when the queue cannot be declared or used.
   */
  async createProducer(
    queue: TaskQueue | string,
    options: ProducerOptions = {},
  ): Promise<Producer> {
    const producer = new Producer(this.#opener(), taskQueue(queue), options);
    await producer.open();
    this.#producers.add(producer);
    return producer;
  }

  /**
   * A worker that runs `handler` for every task of `queue`; it starts at once (await
   * {@linkcode Worker.ready}) and stops with {@linkcode Worker.stop}.
   *
   * @throws {RangeError} when an option is out of range.
   */
  createWorker(
    queue: TaskQueue | string,
    handler: TaskHandler,
    options: WorkerOptions = {},
  ): Worker {
    const host = {
      live: undefined as ChannelModel | undefined,
      release: (worker: Worker) => this.#workers.delete(worker),
    };
    Object.defineProperty(host, "live", { get: () => this.#live });
    const worker = new Worker(host, taskQueue(queue), handler, options);
    this.#workers.add(worker);
    return worker;
  }

  /**
   * Closes the connection: stops its workers gracefully (their tasks in hand finish and are
   * acked), closes its producers, then the connection.
   */
  async close(): Promise<void> {
    await Promise.all([...this.#workers].map((worker) => worker.stop()));
    this.#closing = true;
    await Promise.all([...this.#producers].map((producer) => producer.close()));
    await this.#model?.close().catch(() => {});
  }

  #opener(): RecoveringChannelModel {
    if (!this.#model || this.#closing) throw new Error("Cannot use a closed connection");
    return this.#model;
  }

  #tell(event: ConnectionEvent): void {
    this.#emitter.emit(event);
    for (const worker of this.#workers) worker.tell(event);
  }
}

function taskQueue(queue: TaskQueue | string): TaskQueue {
  return typeof queue === "string" ? new TaskQueue(queue) : queue;
}
