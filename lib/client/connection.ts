/**
 * The library's front door: a connection to the broker that makes producers and workers, and
 * re-establishes itself (and their consumers) when it drops.
 *
 * @module
 */

import type { ChannelModel, RecoveringChannelModel } from "../amqp.ts";
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

/**
 * Options for {@linkcode connect}.
 *
 * @example A worker's connection to a broker with a private CA (needs a broker: type-checked, not run)
 * ```ts
 * import { connect, type ConnectOptions } from "@workqueue/rabbitmq";
 *
 * const options: ConnectOptions = {
 *   heartbeat: 5,
 *   ca: await Deno.readTextFile("/etc/rabbitmq/ca.pem"),
 * };
 * const connection = await connect("amqps://broker.example", options);
 * ```
 */
export interface ConnectOptions {
  /**
   * Heartbeat interval in seconds, so that a dead peer is noticed in seconds rather than the
   * minutes TCP takes. 0 turns heartbeats off.
   * @default {15}
   */
  heartbeat?: number;
  /**
   * How long to wait for the TCP connection and the AMQP handshake, in milliseconds.
   * @default {10000}
   */
  timeout?: number;
  /**
   * PEM certificate(s) of the CA that signed the broker's certificate, for `amqps://` with a
   * private CA. The system's trusted CAs are used when absent; verification is always on.
   * @default {undefined}
   */
  ca?: string;
  /**
   * Attempts at the first connection before giving up. Errors that another attempt cannot fix
   * (wrong password, unknown vhost or host) end the attempts at once.
   * @default {3}
   */
  attempts?: number;
  /**
   * Reconnect forever, with backoff, when the established connection drops, and have the workers
   * consume again; `false` makes a drop final (a one-shot producer).
   * @default {true}
   */
  recover?: boolean;
  /**
   * The name the broker shows for the connection (`connection_name`, in `rabbitmqctl
   * list_connections` and the management UI).
   * @default {"<main module's file name> pid <pid>"}
   */
  name?: string;
}

// The public options are the broker connection's, less the hooks the connection sets itself; this
// fails to compile when the broker connection gains an option that is not passed on.
const _allOptionsPassedOn: Exclude<
  keyof BrokerOptions,
  keyof ConnectOptions | "setup" | "onConnected" | "onReconnecting"
> extends never ? true : never = true;

/**
 * What happens to a connection.
 *
 * @example Log a connection's drops and reconnects (needs a broker: type-checked, not run)
 * ```ts
 * import { connect, type ConnectionEvent } from "@workqueue/rabbitmq";
 *
 * function describe(event: ConnectionEvent): string {
 *   switch (event.type) {
 *     case "connection_lost":
 *       return `Connection lost: ${event.reason}`;
 *     case "reconnecting":
 *       return `Reconnecting to ${event.url} in ${event.delay} ms`;
 *     case "reconnected":
 *       return `Reconnected to ${event.url}`;
 *   }
 * }
 * const connection = await connect("amqp://localhost");
 * connection.on("*", (event) => console.error(describe(event)));
 * ```
 */
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
 * @example Connect, send, close (needs a broker: type-checked, not run)
 * ```ts
 * import { connect } from "@workqueue/rabbitmq";
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
 *
 * @example One connection for a producer and a worker (needs a broker: type-checked, not run)
 * ```ts
 * import { connect, TaskQueue } from "@workqueue/rabbitmq";
 *
 * const queue = new TaskQueue("thumbnails");
 * const connection = await connect("amqp://localhost");
 * connection.on("connection_lost", (event) => console.error(event.reason));
 * const producer = await connection.createProducer(queue);
 * const worker = connection.createWorker(queue, (task) => console.log(task.text()));
 * await worker.ready;
 * await producer.send("cat.png");
 * await connection.close(); // stops the worker gracefully first
 * ```
 */
export class Connection {
  #model: RecoveringChannelModel | undefined;
  #live: ChannelModel | undefined;
  #workers = new Set<Worker>();
  #producers = new Set<Producer>();
  #emitter = new Emitter<ConnectionEvent>();
  #connectedOnce = false;
  #closing = false;

  /**
   * Made by {@linkcode connect}; not meant to be called directly.
   *
   * @internal
   */
  constructor() {}

  /**
   * Connects; called once by {@linkcode connect}.
   *
   * @internal
   */
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
