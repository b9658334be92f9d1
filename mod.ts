/**
 * A work queue for Deno on RabbitMQ: the "Work Queues" tutorial made into a library. Producers
 * send tasks to a durable queue and are told a task is sent only once the broker has it on disk;
 * workers share the tasks with fair dispatch, ack each only after its handler finished, retry a
 * failed one after a growing delay and park it in `<queue>.dead` after its last try. A task can be
 * sent to run later (`delay` or `at`, up to about 49 days ahead): it is stored at once and handed
 * to a worker no earlier than its time. At least once: a task is never lost, and may (rarely) run
 * twice.
 *
 * Examples marked "needs a broker" are type-checked (`deno check --doc`) but not run.
 *
 * @example A producer and a worker in one program (needs a broker: type-checked, not run)
 * ```ts
 * import { connect, PermanentError, TaskQueue } from "@workqueue/rabbitmq";
 *
 * const queue = new TaskQueue("emails", { maxRetries: 5 });
 * const connection = await connect(Deno.env.get("AMQP_URL") ?? "amqp://localhost");
 *
 * const producer = await connection.createProducer(queue);
 * await producer.sendJson({ to: "ada@example.com" });
 *
 * const worker = connection.createWorker(queue, async (task, signal) => {
 *   const { to } = task.json<{ to?: string }>();
 *   if (!to) throw new PermanentError("no address"); // parked at once, never retried
 *   await fetch(`https://mail.example/send?to=${to}`, { signal });
 * });
 * worker.on("done", (event) => console.log(`done ${event.id} in ${event.durationMs} ms`));
 * await worker.ready;
 * // ... later: finish the tasks in hand, then close.
 * await connection.close();
 * ```
 *
 * @module
 */

export {
  connect,
  Connection,
  type ConnectionEvent,
  type ConnectOptions,
} from "./lib/client/connection.ts";
export { AmqpError, type AmqpErrorOptions } from "./lib/broker/errors.ts";
export type { ReconnectInfo } from "./lib/broker/connection.ts";
export type { EventMap, Typed } from "./lib/observe/emitter.ts";
export {
  DEFAULT_QUEUE,
  parseQueueType,
  QUEUE_TYPES,
  type QueueType,
  TaskQueue,
  type TaskQueueOptions,
} from "./lib/topology/task_queue.ts";
export { TASK_HEADERS } from "./lib/topology/task_headers.ts";
export { MAX_DELAY_MS } from "./lib/topology/delays.ts";
export {
  Producer,
  type ProducerOptions,
  type SendManyOptions,
  type SendManyResult,
  type SendOptions,
} from "./lib/produce/producer.ts";
export {
  type TaskEvent,
  Worker,
  type WorkerEvent,
  type WorkerOptions,
  type WorkerState,
} from "./lib/consume/worker.ts";
export { PermanentError, type Task, type TaskHandler } from "./lib/consume/task.ts";
export type { Outcome } from "./lib/consume/outcome.ts";
export { OutcomeTimeoutError, type WaitOptions } from "./lib/produce/outcomes.ts";
