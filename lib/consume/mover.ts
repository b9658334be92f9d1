/**
 * The confirm channel failed tasks are moved on, beside the consuming channel, and the delay
 * levels retries wait in.
 *
 * @module
 */

import type { ChannelModel, ConfirmChannel } from "../amqp.ts";
import type { TaskQueue } from "../topology/task_queue.ts";

/**
 * The confirm channel failed tasks are moved on. A failed move (the broker refusing a retry
 * queue, say) closes it; the next move opens a new one, and the consuming channel is untouched.
 */
export class Mover {
  #model: ChannelModel;
  #open: Promise<ConfirmChannel> | undefined;
  #delays: Promise<void> | undefined;

  /** Moves go over channels of `model`. */
  constructor(model: ChannelModel) {
    this.#model = model;
  }

  /** The open confirm channel, or a new one. */
  channel(): Promise<ConfirmChannel> {
    if (this.#open) return this.#open;
    const opening = this.#model.createConfirmChannel().then((channel) => {
      channel.on("error", () => {});
      channel.on("close", () => {
        if (this.#open === opening) this.#open = undefined;
      });
      return channel;
    });
    opening.catch(() => {
      if (this.#open === opening) this.#open = undefined;
    });
    this.#open = opening;
    return opening;
  }

  /**
   * Makes sure `queue`'s delay levels exist, once: before the first retry and, after
   * {@linkcode Mover.forgetDelays}, before the next.
   */
  delays(queue: TaskQueue, onWarning: (message: string) => void = () => {}): Promise<void> {
    if (this.#delays) return this.#delays;
    const declaring = queue.openDelays(this.#model, { onWarning });
    declaring.catch(() => {
      if (this.#delays === declaring) this.#delays = undefined;
    });
    this.#delays = declaring;
    return declaring;
  }

  /** A retry could not be moved into the delay levels: declare them again before the next. */
  forgetDelays(): void {
    this.#delays = undefined;
  }

  /** Closes the channel, if one is open. */
  async close(): Promise<void> {
    const open = this.#open;
    this.#open = undefined;
    await open?.then((channel) => channel.close()).catch(() => {});
  }
}
