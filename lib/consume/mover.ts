/**
 * The confirm channel failed tasks are moved on, beside the consuming channel.
 *
 * @module
 */

import type { ChannelModel, ConfirmChannel } from "../amqp.ts";

/**
 * The confirm channel failed tasks are moved on. A failed move (the broker refusing a retry
 * queue, say) closes it; the next move opens a new one, and the consuming channel is untouched.
 */
export class Mover {
  #model: ChannelModel;
  #open: Promise<ConfirmChannel> | undefined;

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

  /** Closes the channel, if one is open. */
  async close(): Promise<void> {
    const open = this.#open;
    this.#open = undefined;
    await open?.then((channel) => channel.close()).catch(() => {});
  }
}
