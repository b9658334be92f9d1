/**
 * The ack path: the one place deliveries are acked or requeued. Acks for tasks that finished in
 * the same turn of the event loop go out together, as one `multiple` ack where the finished tasks
 * are the oldest outstanding ones, so a fast worker does not pay a frame per task. Nothing is
 * acked before its task finished.
 *
 * @module
 */

import { setImmediate } from "node:timers";
import { ack, type Channel, type ConsumeMessage, requeue } from "../amqp.ts";

/** Options for {@linkcode AckBatch}. */
export interface AckBatchOptions {
  /**
   * Called right before acks are sent, so that what was said about the tasks (their ` [x] Done`
   * lines) is written before the broker forgets them.
   * @default {() => {}}
   */
  beforeFlush?: () => void;
  /**
   * Called for a task whose ack could not be sent: its channel is gone, and the broker will
   * redeliver it.
   * @default {() => {}}
   */
  onStale?: (id: string) => void;
}

/** The acks of one channel. */
export class AckBatch {
  #channel: Channel;
  #beforeFlush: () => void;
  #onStale: (id: string) => void;
  // Delivery tags not yet acked or requeued, in delivery order (ascending).
  #outstanding = new Set<number>();
  #pending = new Map<number, { message: ConsumeMessage; id: string }>();
  #scheduled = false;
  #soon = false;
  // Made once: at prefetch 1 it is queued for every task.
  #flushSoon = () => {
    this.#soon = false;
    this.flush();
  };

  /** Acks on `channel`, the channel that delivered the tasks. */
  constructor(channel: Channel, options: AckBatchOptions = {}) {
    this.#channel = channel;
    this.#beforeFlush = options.beforeFlush ?? (() => {});
    this.#onStale = options.onStale ?? (() => {});
  }

  /** Records a delivery, so that it counts as outstanding until it is settled. */
  delivered(message: ConsumeMessage): void {
    this.#outstanding.add(message.fields.deliveryTag);
  }

  /** Acks a finished task, at the end of this turn of the event loop. */
  ack(message: ConsumeMessage, id: string): void {
    this.#pending.set(message.fields.deliveryTag, { message, id });
    if (this.#pending.size === this.#outstanding.size) {
      // Nothing in hand is still running: ack before this turn ends rather than a turn later,
      // which at prefetch 1 would hold up the next delivery. Not at once, though: amqplib hands
      // over every delivery of one socket read in the same turn, and tasks whose handler returns
      // at once would otherwise cost the worker a write and the broker an ack each.
      if (this.#soon) return;
      this.#soon = true;
      queueMicrotask(this.#flushSoon);
      return;
    }
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => this.flush());
  }

  /** Puts a task back in the queue now; false when its channel is gone (it comes back anyway). */
  requeue(message: ConsumeMessage): boolean {
    this.#outstanding.delete(message.fields.deliveryTag);
    try {
      requeue(this.#channel, message);
      return true;
    } catch {
      return false;
    }
  }

  /** Sends the acks waiting for the end of the turn. */
  flush(): void {
    this.#scheduled = false;
    if (this.#pending.size === 0) return;
    this.#beforeFlush();
    let last: number | undefined;
    for (const tag of this.#outstanding) {
      if (!this.#pending.has(tag)) break;
      last = tag;
    }
    try {
      if (last !== undefined) {
        ack(this.#channel, this.#pending.get(last)!.message, true);
        for (const tag of this.#outstanding) {
          if (tag > last) break;
          this.#outstanding.delete(tag);
          this.#pending.delete(tag);
        }
      }
      for (const [tag, { message }] of this.#pending) {
        ack(this.#channel, message);
        this.#outstanding.delete(tag);
        this.#pending.delete(tag);
      }
    } catch {
      for (const { id } of this.#pending.values()) this.#onStale(id);
      this.#pending.clear();
    }
  }
}
