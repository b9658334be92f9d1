/**
 * The worker: consumes the task queue with fair dispatch, runs the handler for each task, acks it
 * only after the handler finished, and recovers from lost channels and connections. Its state and
 * what happens to every task are told as typed events.
 *
 * @module
 */

import { setTimeout as sleep } from "node:timers/promises";
import {
  type Channel,
  type ChannelModel,
  consumeManual,
  type ConsumeMessage,
  setPrefetch,
} from "../amqp.ts";
import { reconnectDelay, type ReconnectInfo } from "../broker/connection.ts";
import { AmqpError, brokerReason, describeError, replyCode } from "../broker/errors.ts";
import { Emitter, type EventMap } from "../observe/emitter.ts";
import type { TaskQueue } from "../topology/task_queue.ts";
import { AckBatch } from "./ack_batch.ts";
import { Deadlines } from "./deadlines.ts";
import { Holder } from "./holder.ts";
import { limiter } from "./limiter.ts";
import { Mover } from "./mover.ts";
import type { TaskHandler } from "./task.ts";
import { type FailurePolicy, runTask, type TaskEvent } from "./task_runner.ts";

export type { TaskEvent } from "./task_runner.ts";

/**
 * Where a worker is in its life.
 *
 * @example A health check (needs a broker: type-checked, not run)
 * ```ts
 * import { connect, type WorkerState } from "@workqueue/rabbitmq";
 *
 * const connection = await connect("amqp://localhost");
 * const worker = connection.createWorker("task_queue", () => {});
 * const healthy: WorkerState[] = ["consuming"];
 * Deno.serve({ port: 8080 }, () =>
 *   new Response(worker.state, { status: healthy.includes(worker.state) ? 200 : 503 }));
 * ```
 */
export type WorkerState = "connecting" | "consuming" | "stopping" | "stopped";

/**
 * Something that happened in a worker, for logs and metrics: a {@linkcode TaskEvent}, or news
 * of its connection, channel, consumer or state.
 *
 * @example Log everything as JSON lines (needs a broker: type-checked, not run)
 * ```ts
 * import { connect, type WorkerEvent } from "@workqueue/rabbitmq";
 *
 * function log(event: WorkerEvent): void {
 *   // Bodies are bytes; log their size, not their content.
 *   const line = event.type === "received" ? { ...event, body: event.body.byteLength } : event;
 *   console.log(JSON.stringify(line));
 * }
 * const connection = await connect("amqp://localhost");
 * connection.createWorker("task_queue", () => {}).on("*", log);
 * ```
 */
export type WorkerEvent =
  | TaskEvent
  | { type: "connection_lost"; reason: string }
  | ({ type: "reconnecting" } & ReconnectInfo)
  | { type: "reconnected"; url: string }
  | { type: "channel_lost"; reason: string }
  | { type: "consumer_cancelled" }
  | { type: "consuming"; queue: string }
  | { type: "state"; state: WorkerState };

/**
 * Options for {@linkcode Connection.createWorker}.
 *
 * @example Four tasks at once, a minute each at most (needs a broker: type-checked, not run)
 * ```ts
 * import { connect, type WorkerOptions } from "@workqueue/rabbitmq";
 *
 * const options: WorkerOptions = {
 *   concurrency: 4,
 *   taskTimeout: 60_000,
 *   hostname: Deno.hostname(),
 *   signal: AbortSignal.timeout(3_600_000), // stop gracefully after an hour
 * };
 * const connection = await connect("amqp://localhost");
 * const worker = connection.createWorker("images", async (task, signal) => {
 *   await fetch("https://resizer.example", { method: "POST", body: task.text(), signal });
 * }, options);
 * await worker.stopped;
 * await connection.close();
 * ```
 */
export interface WorkerOptions {
  /**
   * How many tasks run at once.
   * @default {1}
   */
  concurrency?: number;
  /**
   * How many unacked tasks the broker may hand this worker at once. Equal to `concurrency` is
   * fair dispatch: a busy worker gets no new task until it finished one.
   * @default {concurrency}
   */
  prefetch?: number;
  /**
   * Milliseconds a try may run before its signal aborts and it counts as failed ("timeout"),
   * whether or not the handler stops; 0 for no limit. The default stays below RabbitMQ's
   * 30-minute consumer ack timeout.
   * @default {1500000}
   */
  taskTimeout?: number;
  /**
   * This worker's host, recorded on the tasks it parks.
   * @default {"unknown"}
   */
  hostname?: string;
  /**
   * Tasks to take before stopping by itself, as {@linkcode Worker.stop} does: the tasks in hand
   * finish and are acked, and deliveries past the limit go back to the queue untouched; 0 for no
   * limit.
   * @default {0}
   */
  maxTasks?: number;
  /**
   * Aborting it stops the worker as {@linkcode Worker.stop} does.
   * @default {undefined}
   */
  signal?: AbortSignal;
  /**
   * Called right before acks are sent (in batches, at the end of a turn of the event loop), so
   * that output about the finished tasks can be written first.
   * @default {() => {}}
   */
  beforeAck?: () => void;
}

/** What a worker needs of its connection. */
export interface WorkerHost {
  /** The connection in use now, or undefined while it is down. */
  readonly live: ChannelModel | undefined;
  /** Forgets the worker once it stopped. */
  release(worker: Worker): void;
}

/** A channel with its consumer and the channel failed tasks are moved on; replaced together. */
interface Subscription {
  channel: Channel;
  mover: Mover;
  acks: AckBatch;
  holder: Holder;
  consumerTag: string;
}

/**
 * A worker on a task queue, made by {@linkcode Connection.createWorker}. It starts at once; its
 * events tell what it does, and {@linkcode Worker.stop} stops it gracefully.
 *
 * @example Run a worker until Ctrl+C (needs a broker: type-checked, not run)
 * ```ts
 * import { connect, TaskQueue } from "@workqueue/rabbitmq";
 *
 * const connection = await connect("amqp://localhost");
 * const worker = connection.createWorker(new TaskQueue("emails"), async (task) => {
 *   console.log("sending", task.json());
 * }, { concurrency: 4 });
 * worker.on("dead_lettered", (event) => console.error(event.id, event.reason));
 * await worker.ready;
 * Deno.addSignalListener("SIGINT", () => worker.stop());
 * await worker.stopped;
 * await connection.close();
 * ```
 */
export class Worker {
  /** The queue this worker consumes. */
  readonly queue: TaskQueue;
  /** Resolves once the worker consumes for the first time; rejects when it cannot start. */
  readonly ready: Promise<void>;
  /** Resolves once the worker has stopped, and every task it took was settled. */
  readonly stopped: Promise<void>;

  #host: WorkerHost;
  #handler: TaskHandler;
  #emitter = new Emitter<WorkerEvent>();
  #emitEvent = (event: WorkerEvent): void => this.#emitter.emit(event);
  #state: WorkerState = "connecting";
  #concurrency: number;
  #prefetch: number;
  #maxTasks: number;
  #beforeAck: () => void;
  #policy: FailurePolicy;
  #slots: ReturnType<typeof limiter>;
  #inFlight = new Set<Promise<void>>();
  #current: Subscription | undefined;
  #taken = 0;
  #started = Promise.withResolvers<void>();
  #done = Promise.withResolvers<void>();
  #stopRequested = Promise.withResolvers<void>();

  /**
   * Made by {@linkcode Connection.createWorker}; not meant to be called directly.
   *
   * @internal
   */
  constructor(host: WorkerHost, queue: TaskQueue, handler: TaskHandler, options: WorkerOptions) {
    const {
      concurrency = 1,
      prefetch = concurrency,
      taskTimeout = 1_500_000,
      hostname = "unknown",
      maxTasks = 0,
      signal,
      beforeAck = () => {},
    } = options;
    checkWhole("concurrency", concurrency, 1, 65535);
    checkWhole("prefetch", prefetch, 1, 65535);
    checkWhole("taskTimeout", taskTimeout, 0, 2_147_483_647);
    checkWhole("maxTasks", maxTasks, 0, Number.MAX_SAFE_INTEGER);
    if (typeof handler !== "function") {
      throw new TypeError(`Invalid handler: expected a function, got ${typeof handler}`);
    }
    this.queue = queue;
    this.#host = host;
    this.#handler = handler;
    this.#concurrency = concurrency;
    this.#prefetch = prefetch;
    this.#maxTasks = maxTasks;
    this.#beforeAck = beforeAck;
    this.#policy = { queue, hostname, deadlines: new Deadlines(taskTimeout) };
    this.#slots = limiter(concurrency);
    this.ready = this.#started.promise;
    this.stopped = this.#done.promise;
    // Neither needs a listener to be safe: a worker that never started is not an unhandled error.
    this.ready.catch(() => {});
    signal?.addEventListener("abort", () => void this.stop(), { once: true });
    void this.#run(signal);
  }

  /** Where the worker is: connecting, consuming, stopping or stopped. */
  get state(): WorkerState {
    return this.#state;
  }

  /** How many tasks are running now. */
  get running(): number {
    return this.#inFlight.size;
  }

  /**
   * Calls `listener` for every event of `type` (`"*"` for all of them); returns a function that
   * removes it.
   */
  on<K extends WorkerEvent["type"]>(
    type: K,
    listener: (event: EventMap<WorkerEvent>[K]) => void,
  ): () => void;
  /** Calls `listener` for every event; returns a function that removes it. */
  on(type: "*", listener: (event: WorkerEvent) => void): () => void;
  on(type: string, listener: (event: never) => void): () => void {
    return this.#emitter.on(type as "*", listener as (event: WorkerEvent) => void);
  }

  /**
   * Stops gracefully: takes no new task, lets the tasks in hand finish and acks them, then closes
   * its channels. Resolves once stopped; calling it again returns the same promise.
   */
  stop(): Promise<void> {
    this.#stopRequested.resolve();
    return this.stopped;
  }

  /**
   * Called by the connection each time it (re)connects.
   *
   * @internal
   */
  async attach(model: ChannelModel): Promise<void> {
    if (this.#state === "stopping" || this.#state === "stopped") return;
    await this.#subscribe(model);
  }

  /**
   * Called by the connection when it dropped: the channels went with it.
   *
   * @internal
   */
  detach(reason: string): void {
    this.#current = undefined;
    if (this.#state !== "consuming" && this.#state !== "connecting") return;
    this.#setState("connecting");
    this.#emit({ type: "connection_lost", reason });
  }

  /**
   * Tells the worker's listeners about its connection.
   *
   * @internal
   */
  tell(event: WorkerEvent): void {
    this.#emit(event);
  }

  #emit(event: WorkerEvent): void {
    this.#emitter.emit(event);
  }

  // Consuming has begun: said once per subscription, before the first task's lines.
  #announce(subscription: Subscription): void {
    if (this.#current === subscription) return;
    if (this.#state === "stopping" || this.#state === "stopped") return;
    this.#current = subscription;
    this.#setState("consuming");
    this.#emit({ type: "consuming", queue: this.queue.name });
    this.#started.resolve();
  }

  #setState(state: WorkerState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.#emit({ type: "state", state });
  }

  async #run(signal: AbortSignal | undefined): Promise<void> {
    try {
      if (signal?.aborted) throw signal.reason;
      const model = this.#host.live;
      if (model === undefined) throw new Error("Cannot start a worker: the connection is closed");
      await this.#subscribe(model);
    } catch (error) {
      this.#started.reject(error);
      await this.#finish();
      return;
    }
    await this.#stopRequested.promise;
    await this.#drain();
  }

  async #drain(): Promise<void> {
    // Graceful: take no new task, finish and ack those in flight, then close.
    this.#setState("stopping");
    const last = this.#current;
    if (last) await last.channel.cancel(last.consumerTag).catch(() => {});
    await Promise.all(this.#inFlight);
    // Tasks that could be moved nowhere go back to the queue for another worker to try.
    last?.holder.releaseAll();
    last?.acks.flush();
    if (last) {
      await last.mover.close();
      await last.channel.close().catch(() => {});
    }
    await this.#finish();
  }

  async #finish(): Promise<void> {
    this.#current = undefined;
    this.#policy.deadlines.close();
    this.#setState("stopped");
    this.#host.release(this);
    this.#done.resolve();
    await Promise.resolve();
  }

  async #subscribe(model: ChannelModel): Promise<void> {
    const queue = this.queue;
    const { channel } = await queue.open(model, {
      onWarning: (message) => this.#emit({ type: "warning", message }),
    });
    const mover = new Mover(model);
    const acks = new AckBatch(channel, {
      beforeFlush: this.#beforeAck,
      onStale: (id) => this.#emit({ type: "stale_delivery", id }),
    });
    let held = 0;
    const holder = new Holder({
      firstDelay: queue.retryDelay,
      maxDelay: queue.maxRetryDelay,
      onCount: (count) => {
        // A held task keeps counting against its consumer's prefetch; a new consumer on the same
        // channel (acks are the channel's) takes tasks again, as many as before.
        if (count > held) void this.#reconsume(subscription, onMessage);
        held = count;
      },
    });
    const subscription: Subscription = { channel, mover, acks, holder, consumerTag: "" };
    let closeReason = "no reason given";
    channel.on("error", (error: unknown) => closeReason = describeError(error));
    channel.on("close", () => {
      holder.forget();
      void mover.close();
      if (this.#current !== subscription) return;
      this.#current = undefined;
      // A dropped connection closes its channels first; wait a turn so that case is left to
      // connection recovery, and only a channel closed on its own is replaced here.
      setTimeout(() => {
        if (this.#state !== "consuming" || this.#host.live !== model || this.#current) return;
        this.#setState("connecting");
        this.#emit({ type: "channel_lost", reason: closeReason });
        void this.#resubscribe(model);
      }, 0);
    });
    const onMessage = (message: ConsumeMessage | null): void => {
      this.#announce(subscription);
      if (message === null) {
        // The broker cancels consumers of a deleted queue; declare it again and resubscribe.
        this.#emit({ type: "consumer_cancelled" });
        void channel.close().catch(() => {});
        return;
      }
      if (this.#maxTasks > 0 && this.#taken >= this.#maxTasks) {
        acks.requeue(message);
        return;
      }
      if (++this.#taken === this.#maxTasks) void this.stop();
      acks.delivered(message);
      const delivery = { acks, mover, holder, message };
      // With prefetch at most the concurrency the broker never hands over more than can run.
      const work = this.#prefetch <= this.#concurrency
        ? runTask(delivery, this.#handler, this.#policy, this.#emitEvent)
        : this.#slots(async () =>
          await runTask(delivery, this.#handler, this.#policy, this.#emitEvent)
        );
      // A task its handler finished at once is settled already: nothing to wait for.
      if (work === undefined) return;
      const tracked = work.finally(() => this.#inFlight.delete(tracked));
      this.#inFlight.add(tracked);
    };
    try {
      // Checked like the task queue: a dead queue that could drop parked tasks is refused.
      await queue.openDead(model, {
        onWarning: (message) => this.#emit({ type: "warning", message }),
      });
      await setPrefetch(channel, this.#prefetch);
      subscription.consumerTag = await consumeManual(channel, queue.name, onMessage).catch(
        (error) => {
          throw cannot(`consume "${queue.name}"`, error);
        },
      );
    } catch (error) {
      // Nothing of a failed subscribe may outlive it: a leaked channel per retry adds up.
      await mover.close();
      await channel.close().catch(() => {});
      throw error;
    }
    if (this.#state === "stopping" || this.#state === "stopped") {
      // Stopped while subscribing: the new consumer must not outlive the stop.
      await channel.cancel(subscription.consumerTag).catch(() => {});
      await mover.close();
      await channel.close().catch(() => {});
      return;
    }
    this.#announce(subscription);
  }

  async #reconsume(
    subscription: Subscription,
    onMessage: (message: ConsumeMessage | null) => void,
  ): Promise<void> {
    const { channel } = subscription;
    try {
      await channel.cancel(subscription.consumerTag);
      if (this.#current !== subscription || this.#state !== "consuming") return;
      subscription.consumerTag = await consumeManual(channel, this.queue.name, onMessage);
      if (this.#state !== "consuming") await channel.cancel(subscription.consumerTag);
    } catch {
      // The channel is gone: its close starts a new subscription.
    }
  }

  async #resubscribe(model: ChannelModel): Promise<void> {
    const wanted = () =>
      this.#state === "connecting" && this.#host.live === model && !this.#current;
    for (let attempt = 1; wanted(); attempt++) {
      await sleep(reconnectDelay(attempt));
      if (!wanted()) return;
      try {
        await this.#subscribe(model);
      } catch (error) {
        this.#emit({
          type: "warning",
          message: error instanceof AmqpError
            ? `${describeError(error)}; trying again`
            : `Cannot consume "${this.queue.name}" yet: ${describeError(error)}`,
        });
      }
    }
  }
}

// What the broker refused, as the one line a user sees: `Cannot consume "q": access refused ...`.
function cannot(what: string, error: unknown): AmqpError {
  return new AmqpError(`Cannot ${what}: ${brokerReason(error)}`, {
    cause: error,
    code: replyCode(error),
  });
}

function checkWhole(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(
      `Invalid ${name} "${value}": expected a whole number from ${min} to ${max}`,
    );
  }
}
