/**
 * The producer: sends tasks to a task queue and reports each sent only once the broker confirmed
 * it, one at a time or many pipelined. A channel lost between sends is replaced on the next send.
 *
 * @module
 */

import { type ChannelOpener, DIRECT_REPLY_TO } from "../amqp.ts";
import type { Outcome } from "../consume/outcome.ts";
// Types only: the modules behind sendMany and the waits are loaded when first used, so that a
// program sending one task (a one-shot producer) loads and compiles none of them.
import type { Outcomes, WaitOptions } from "./outcomes.ts";
import type { TaskQueue } from "../topology/task_queue.ts";
import type { SendAllOptions, SendAllResult } from "./bulk_send.ts";
import { type OpenPublisherOptions, type PublishOptions, TaskPublisher } from "./publisher.ts";

/**
 * Options for {@linkcode Producer.send}: the task id (`id`, a random UUID by default), how long to
 * wait for the broker's confirm (`confirmTimeout`, 30000 ms), a `signal` to stop waiting, the
 * body's `contentType` and AMQP `headers`, and when a worker may have it: `delay` milliseconds
 * from now or `at` a time (at once by default).
 *
 * @example Send a task with an id of its own (needs a broker: type-checked, not run)
 * ```ts
 * import { connect, type SendOptions } from "@workqueue/rabbitmq";
 *
 * const connection = await connect("amqp://localhost");
 * const producer = await connection.createProducer("invoices");
 * const options: SendOptions = { id: "invoice-2026-0042", confirmTimeout: 5000 };
 * await producer.sendJson({ invoice: 42 }, options);
 * await connection.close();
 * ```
 */
export type SendOptions = PublishOptions;

/**
 * Options for {@linkcode Producer.sendMany}: how many tasks may wait for their confirm at once
 * (`window`, 1000), how long one may wait (`confirmTimeout`, 30000 ms), `onConfirmed` for progress,
 * a `signal` to stop taking new tasks, and one `delay` (each task's, from its own publish) or `at`
 * (one time) for all the tasks.
 *
 * @example Progress while sending many (needs a broker: type-checked, not run)
 * ```ts
 * import { connect, type SendManyOptions } from "@workqueue/rabbitmq";
 *
 * const connection = await connect("amqp://localhost");
 * const producer = await connection.createProducer("task_queue");
 * const options: SendManyOptions = {
 *   window: 500,
 *   onConfirmed: (confirmed, published) => console.log(`${confirmed}/${published}`),
 * };
 * await producer.sendMany(["a.", "b..", "c..."], options);
 * await connection.close();
 * ```
 */
export type SendManyOptions = SendAllOptions;

/**
 * What {@linkcode Producer.sendMany} did: tasks `published`, tasks `confirmed`, how many of the
 * first tasks were all confirmed (`confirmedPrefix`), and the first `error`, if any.
 *
 * @example Send again from the first task not confirmed (needs a broker: type-checked, not run)
 * ```ts
 * import { connect, type SendManyResult } from "@workqueue/rabbitmq";
 *
 * const bodies = ["a.", "b..", "c..."];
 * const connection = await connect("amqp://localhost");
 * const producer = await connection.createProducer("task_queue");
 * const result: SendManyResult = await producer.sendMany(bodies);
 * if (result.error !== undefined) {
 *   await producer.sendMany(bodies.slice(result.confirmedPrefix)); // may duplicate, never lose
 * }
 * await connection.close();
 * ```
 */
export type SendManyResult = SendAllResult;

/**
 * Options for {@linkcode Connection.createProducer}: `onWarning` when the queue exists with other
 * arguments and is used as it is, and `onBlocked` when the broker starts blocking publishers
 * (memory or disk alarm).
 *
 * @example Hear about a blocked broker (needs a broker: type-checked, not run)
 * ```ts
 * import { connect, type ProducerOptions } from "@workqueue/rabbitmq";
 *
 * const options: ProducerOptions = {
 *   onBlocked: (reason) => console.error(`Broker blocks publishers: ${reason}`),
 *   onWarning: (message) => console.error(message),
 * };
 * const connection = await connect("amqp://localhost");
 * const producer = await connection.createProducer("task_queue", options);
 * ```
 */
export type ProducerOptions = OpenPublisherOptions;

/** What a producer needs of its connection. */
export type ProducerHost = Parameters<typeof TaskPublisher.open>[0];

/**
 * Sends tasks to one task queue, made by {@linkcode Connection.createProducer}.
 *
 * @example Send a task and a JSON task (needs a broker: type-checked, not run)
 * ```ts
 * import { connect, TaskQueue } from "@workqueue/rabbitmq";
 *
 * const connection = await connect("amqp://localhost");
 * const producer = await connection.createProducer(new TaskQueue("task_queue"));
 * const id = await producer.send("Hello World!");
 * await producer.sendJson({ to: "ada@example.com", template: "welcome" });
 * console.log(`sent ${id}`);
 * await connection.close();
 * ```
 */
export class Producer {
  /** The queue tasks go to. */
  readonly queue: TaskQueue;
  #host: ProducerHost & ChannelOpener;
  #options: ProducerOptions;
  #publisher: Promise<TaskPublisher> | undefined;
  #outcomes: Outcomes | undefined;
  #closed = false;

  /**
   * Made by {@linkcode Connection.createProducer}; not meant to be called directly
   * (`commands/send.ts` does, for `new_task.ts --stdin` and `--wait`, on a broker connection of its
   * own, so that the producer loads no worker code).
   *
   * @internal
   */
  constructor(host: ProducerHost, queue: TaskQueue, options: ProducerOptions = {}) {
    this.#host = host;
    this.queue = queue;
    this.#options = options;
  }

  /** Opens the channel and declares the queue; sends do it themselves when needed. */
  async open(): Promise<void> {
    await this.#open();
  }

  /**
   * Sends one task and resolves with its id once the broker has confirmed it: it is then on disk
   * in the queue (or its replicas). With `delay` or `at` it is on disk in the queue's delay levels,
   * and goes to the queue, for a worker, no earlier than its time (usually within a second or two
   * after it).
   *
   * @example A task for tomorrow, and one in 90 s (needs a broker: type-checked, not run)
   * ```ts
   * import { connect } from "@workqueue/rabbitmq";
   *
   * const connection = await connect("amqp://localhost");
   * const producer = await connection.createProducer("reminders");
   * await producer.send("call Ada", { at: new Date(Date.now() + 86_400_000) });
   * await producer.send("check the oven", { delay: 90_000 });
   * await connection.close();
   * ```
   *
   * @throws {AmqpError} when the broker refuses the task, cannot route it, or no confirm comes in
   * time; the task must then be treated as not sent (it may still have arrived: send it again
   * and accept a duplicate, the at-least-once rule).
   */
  async send(body: string | Uint8Array, options: SendOptions = {}): Promise<string> {
    const publisher = await this.#open();
    return await publisher.publish(body, options);
  }

  /**
   * Sends `value` as a JSON task (`content-type: application/json`).
   *
   * @throws {TypeError} when `value` cannot be written as JSON.
   * @throws {AmqpError} as for {@linkcode Producer.send}.
   */
  sendJson(value: unknown, options: SendOptions = {}): Promise<string> {
    const text = JSON.stringify(value);
    if (text === undefined) throw new TypeError("Cannot send as JSON: the value has no JSON form");
    return this.send(text, { contentType: "application/json", ...options });
  }

  /**
   * Sends every body of `bodies`, pipelined with a window of unconfirmed tasks, and resolves once
   * all were confirmed or the first failed. Never throws for a failed task: the result says how
   * many of the first tasks were all confirmed, so a caller can send again from there.
   */
  async sendMany(
    bodies: AsyncIterable<string | Uint8Array> | Iterable<string | Uint8Array>,
    options: SendManyOptions = {},
  ): Promise<SendManyResult> {
    const { sendAll } = await import("./bulk_send.ts");
    return await sendAll(await this.#open(), bodies, options);
  }

  /**
   * Sends one task and waits until a worker has finished it for good: done (resolves with
   * `status: "done"` and the handler's result) or parked after its last try (`status: "parked"`
   * and the reason). Retries in between are waited through. The outcome travels over RabbitMQ's
   * direct reply-to: nothing is declared for it, and if this producer goes away the task still
   * runs, only its outcome is lost.
   *
   * @throws {AmqpError} as for {@linkcode Producer.send}, or when the connection drops while
   * waiting (the task still runs).
   * @throws {OutcomeTimeoutError} when `wait.timeout` passes first (the task still runs).
   */
  async sendAndWait(
    body: string | Uint8Array,
    options: SendOptions & { wait?: WaitOptions; onSent?: (id: string) => void } = {},
  ): Promise<Outcome> {
    const { wait = {}, onSent = () => {}, ...send } = options;
    const outcomes = await this.#listen();
    const id = await this.send(body, { ...send, replyTo: DIRECT_REPLY_TO });
    onSent(id);
    return await outcomes.wait(id, wait);
  }

  /**
   * Sends every body of `bodies` as {@linkcode Producer.sendMany} does and waits for each task's
   * outcome, calling `onOutcome` as they come (in finishing order) with the outcome and the
   * task's place in `bodies`. Resolves with the send's result and the outcomes that came.
   */
  async sendManyAndWait(
    bodies: AsyncIterable<string | Uint8Array> | Iterable<string | Uint8Array>,
    options: SendManyOptions & {
      wait?: WaitOptions;
      onOutcome?: (outcome: Outcome, index: number) => void;
    } = {},
  ): Promise<SendManyResult & { outcomes: Outcome[]; missing: number }> {
    const { wait = {}, onOutcome = () => {}, onPublished, ...send } = options;
    const outcomes = await this.#listen();
    const collected: Outcome[] = [];
    const waits: Promise<void>[] = [];
    let missing = 0;
    const result = await this.sendMany(bodies, {
      ...send,
      properties: { ...send.properties, replyTo: DIRECT_REPLY_TO },
      onPublished: (id, index) => {
        onPublished?.(id, index);
        waits.push(
          outcomes.wait(id, wait).then((outcome) => {
            collected.push(outcome);
            onOutcome(outcome, index);
          }, () => void missing++),
        );
      },
    });
    // Tasks that were not confirmed are not waited for: they may never have arrived.
    await Promise.all(waits.slice(0, result.confirmedPrefix));
    return { ...result, outcomes: collected, missing };
  }

  /** Closes the producer's channel; confirms still outstanding fail. */
  async close(): Promise<void> {
    this.#closed = true;
    const publisher = this.#publisher;
    this.#publisher = undefined;
    await publisher?.then((open) => open.close()).catch(() => {});
  }

  // The reply consumer must exist on the publishing channel before a task names it.
  async #listen(): Promise<Outcomes> {
    const publisher = await this.#open();
    if (!this.#outcomes) {
      const { Outcomes } = await import("./outcomes.ts");
      if (this.#outcomes) return this.#outcomes;
      const outcomes = new Outcomes();
      publisher.onClose(() => outcomes.close());
      this.#outcomes = outcomes;
      await publisher.listenForReplies(outcomes.receive);
    }
    return this.#outcomes;
  }

  #open(): Promise<TaskPublisher> {
    if (this.#closed) return Promise.reject(new Error("Cannot send: the producer is closed"));
    if (this.#publisher) return this.#publisher;
    const opening = TaskPublisher.open(this.#host, this.queue, this.#options).then((publisher) => {
      publisher.onClose(() => {
        if (this.#publisher === opening) this.#publisher = undefined;
        this.#outcomes = undefined;
      });
      return publisher;
    });
    opening.catch(() => {
      if (this.#publisher === opening) this.#publisher = undefined;
    });
    this.#publisher = opening;
    return opening;
  }
}
