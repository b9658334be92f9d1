/**
 * The consume and ack path: fair dispatch with a prefetch limit, manual acks sent only after a
 * task's handler finished, recovery from lost connections and channels, and a graceful stop
 * that lets tasks in flight finish.
 *
 * @module
 */

import { setTimeout as sleep } from "node:timers/promises";
import {
  type Channel,
  type ChannelModel,
  connect,
  openTaskChannel,
  type QueueType,
  reconnectDelay,
  type ReconnectInfo,
} from "../amqp.ts";
import { AckBatch } from "./ack_batch.ts";
import { limiter } from "./limiter.ts";
import { deadQueueName, declareDeadQueue, Mover } from "../topology/dead_letter.ts";
import { describeError, replyCode } from "../broker/errors.ts";
import {
  Deadlines,
  type FailurePolicy,
  runTask,
  type TaskEvent,
  type TaskHandler,
} from "./task_runner.ts";

export type { Task, TaskEvent, TaskHandler } from "./task_runner.ts";

/** Something the operator should hear about, as it happens. */
export type WorkerEvent =
  | TaskEvent
  | { type: "connection_lost"; reason: string }
  | ({ type: "reconnecting" } & ReconnectInfo)
  | { type: "reconnected"; url: string }
  | { type: "channel_lost"; reason: string }
  | { type: "consumer_cancelled" }
  | { type: "consuming"; queue: string };

/** Options for {@linkcode runWorker}. */
export interface RunWorkerOptions {
  /**
   * The queue to consume.
   * @default {"task_queue"}
   */
  queue?: string;
  /**
   * The queue type to declare (and its dead queue's).
   * @default {"classic"}
   */
  queueType?: QueueType;
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
   * Retries of a failed task after its first try, each after a delay (see `retryDelay`); then it
   * is parked in `<queue>.dead`.
   * @default {3}
   */
  maxRetries?: number;
  /**
   * Milliseconds before the first retry, doubled for each further one (up to 10 minutes).
   * @default {1000}
   */
  retryDelay?: number;
  /**
   * Milliseconds a try may run before it is stopped and counted as failed ("timeout"); 0 for no
   * limit. The default stays below RabbitMQ's 30-minute consumer ack timeout.
   * @default {1500000}
   */
  taskTimeout?: number;
  /**
   * This worker's host, recorded on the tasks it parks.
   * @default {"unknown"}
   */
  hostname?: string;
  /**
   * Tasks to take before stopping as on `signal`: the tasks in hand finish and are acked, and
   * deliveries past the limit go back to the queue untouched; 0 for no limit.
   * @default {0}
   */
  maxTasks?: number;
  /**
   * Heartbeat interval in seconds.
   * @default {15}
   */
  heartbeat?: number;
  /**
   * PEM CA certificate for `amqps://` with a private CA.
   * @default {undefined}
   */
  ca?: string;
  /**
   * Aborting it stops the worker gracefully: no new tasks, tasks in flight finish and are acked.
   * @default {undefined}
   */
  signal?: AbortSignal;
  /**
   * Called once consuming has started for the first time.
   * @default {() => {}}
   */
  onReady?: () => void;
  /**
   * Called right before acks are sent (in batches, at the end of a turn of the event loop), so
   * that output about the finished tasks can be written first.
   * @default {() => {}}
   */
  beforeAck?: () => void;
  /**
   * Called for connection and channel trouble and other things worth a log line.
   * @default {() => {}}
   */
  onEvent?: (event: WorkerEvent) => void;
}

/** A channel with its consumer and the channel failed tasks are moved on; replaced together. */
interface Subscription {
  channel: Channel;
  mover: Mover;
  acks: AckBatch;
  consumerTag: string;
}

/**
 * Consumes the task queue at `url` and runs `handler` for every task, acking each after its
 * handler resolved. A lost connection is re-established (forever, with backoff), a lost channel
 * or a consumer cancelled by the broker is replaced, and consuming resumes; tasks that were not
 * acked are redelivered by the broker. Resolves after a graceful stop.
 *
 * @throws {AmqpError} when the first connection cannot be made.
 */
export async function runWorker(
  url: string,
  handler: TaskHandler,
  options: RunWorkerOptions = {},
): Promise<void> {
  const {
    queue = "task_queue",
    queueType = "classic",
    concurrency = 1,
    prefetch = concurrency,
    maxRetries = 3,
    retryDelay = 1000,
    taskTimeout = 1_500_000,
    hostname = "unknown",
    maxTasks = 0,
    heartbeat = 15,
    ca,
    signal,
    onReady = () => {},
    onEvent = () => {},
    beforeAck: beforeFlush = () => {},
  } = options;
  checkWhole("concurrency", concurrency, 1, 65535);
  checkWhole("prefetch", prefetch, 1, 65535);
  checkWhole("maxRetries", maxRetries, 0, 1000);
  checkWhole("retryDelay", retryDelay, 1, 86_400_000);
  checkWhole("taskTimeout", taskTimeout, 0, Number.MAX_SAFE_INTEGER);
  checkWhole("maxTasks", maxTasks, 0, Number.MAX_SAFE_INTEGER);
  signal?.throwIfAborted();
  const deadlines = new Deadlines(taskTimeout);
  const policy: FailurePolicy = { queue, maxRetries, retryDelay, taskTimeout, hostname, deadlines };
  const slots = limiter(concurrency);

  const inFlight = new Set<Promise<void>>();
  let current: Subscription | undefined;
  let live: ChannelModel | undefined;
  let stopping = false;
  let ready = false;
  let taken = 0;
  const enough = Promise.withResolvers<void>();
  // Once consuming, and before the first task's lines, whichever comes first.
  const announce = () => {
    if (ready) return;
    ready = true;
    onReady();
  };

  const subscribe = async (model: ChannelModel): Promise<void> => {
    const { channel } = await openTaskChannel(model, queue, {
      queueType,
      onWarning: (message) => onEvent({ type: "warning", message }),
    });
    const mover = new Mover(model);
    try {
      await declareDeadQueue(await mover.channel(), queue, { type: queueType });
    } catch (error) {
      // A dead queue made with other arguments is used as it is, like the task queue.
      if (replyCode(error) !== 406) throw error;
      await (await mover.channel()).checkQueue(deadQueueName(queue));
    }
    await channel.prefetch(prefetch);
    const acks = new AckBatch(channel, {
      beforeFlush,
      onStale: (id) => onEvent({ type: "stale_delivery", id }),
    });
    const subscription: Subscription = { channel, mover, acks, consumerTag: "" };
    let closeReason = "no reason given";
    channel.on("error", (error: unknown) => closeReason = describeError(error));
    channel.on("close", () => {
      void mover.close();
      if (current !== subscription) return;
      current = undefined;
      // A dropped connection closes its channels first; wait a turn so that case is left to
      // connection recovery, and only a channel closed on its own is replaced here.
      setTimeout(() => {
        if (stopping || live !== model || current !== undefined) return;
        onEvent({ type: "channel_lost", reason: closeReason });
        void resubscribe(model);
      }, 0);
    });
    const { consumerTag } = await channel.consume(queue, (message) => {
      announce();
      if (message === null) {
        // The broker cancels consumers of a deleted queue; declare it again and resubscribe.
        onEvent({ type: "consumer_cancelled" });
        void channel.close().catch(() => {});
        return;
      }
      if (maxTasks > 0 && taken >= maxTasks) {
        acks.requeue(message);
        return;
      }
      if (++taken === maxTasks) enough.resolve();
      acks.delivered(message);
      const run = () => runTask({ acks, mover, message }, handler, policy, onEvent);
      // With prefetch at most the concurrency the broker never hands over more than can run.
      const work = (prefetch <= concurrency ? run() : slots(run))
        .finally(() => inFlight.delete(work));
      inFlight.add(work);
    }, { noAck: false });
    subscription.consumerTag = consumerTag;
    current = subscription;
    announce();
    onEvent({ type: "consuming", queue });
  };

  const resubscribe = async (model: ChannelModel): Promise<void> => {
    for (let attempt = 1; !stopping && live === model && current === undefined; attempt++) {
      await sleep(reconnectDelay(attempt));
      if (stopping || live !== model || current !== undefined) return;
      try {
        await subscribe(model);
      } catch (error) {
        onEvent({
          type: "warning",
          message: `Cannot consume "${queue}" yet: ${describeError(error)}`,
        });
      }
    }
  };

  let connectedOnce = false;
  let connection;
  try {
    connection = await connect(url, {
      heartbeat,
      ...(ca === undefined ? {} : { ca }),
      recover: true,
      async setup(model) {
        live = model;
        if (!stopping) await subscribe(model);
      },
      onReconnecting: (info) => onEvent({ type: "reconnecting", ...info }),
      onConnected: (url) => {
        if (connectedOnce) onEvent({ type: "reconnected", url });
      },
    });
  } catch (error) {
    deadlines.close();
    throw error;
  }
  connection.on("disconnect", (error: unknown) => {
    live = undefined;
    current = undefined;
    if (!stopping) onEvent({ type: "connection_lost", reason: describeError(error) });
  });
  connectedOnce = true;

  try {
    if (!signal?.aborted) {
      const aborted = new Promise((resolve) =>
        signal?.addEventListener("abort", resolve, { once: true })
      );
      await Promise.race([aborted, enough.promise]);
    }
    // Graceful: take no new task, finish and ack those in flight, then close.
    stopping = true;
    const last = current;
    if (last) await last.channel.cancel(last.consumerTag).catch(() => {});
    await Promise.all(inFlight);
    last?.acks.flush();
    if (last) {
      await last.mover.close();
      await last.channel.close().catch(() => {});
    }
  } finally {
    stopping = true;
    deadlines.close();
    await connection.close().catch(() => {});
  }
}

function checkWhole(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(
      `Invalid ${name} "${value}": expected a whole number from ${min} to ${max}`,
    );
  }
}
