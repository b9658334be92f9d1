/**
 * When the next delayed task is due, read from the delay levels without disturbing them.
 *
 * A task's due time is in its `task-due-at` header, so the next one due is the smallest of those
 * headers. Reading them means taking the tasks with `basic.get` and giving them back unacked (a
 * channel of our own, `nack` with requeue), which is safe on a classic queue: it puts a task back
 * in its place with its TTL running as before. Not on a quorum queue: RabbitMQ 3.10 lets a task
 * given back expire only with the one behind it (late by up to the level's wait), and counts the
 * give-back as a delivery, which a delivery limit could act on (dead-lettering it on to the next
 * level, early). So quorum levels are never read: for them only a bound is known (a task in level
 * k leaves it within 2^k ms and then has less than 2^k ms to go).
 *
 * A level is not read whole either. Its tasks leave it in queue order, each at its due time less
 * what it still has to go after this level (the bits of its routing key below the level); once a
 * task leaves no earlier than the best due time found so far, no task behind it can beat that.
 *
 * @module
 */

import type { GetMessage } from "amqplib";
import { type ChannelOpener, declareDurable, openChannel } from "../amqp.ts";
import { delayLevelName, levelTtl, remainingAfter } from "../topology/delays.ts";
import { delayQueueArguments } from "../topology/delay_levels.ts";
import { TASK_HEADERS } from "../topology/task_headers.ts";

/** The next due time found. */
export interface NextDue {
  /** When the next task is due: exactly, or at the latest. */
  at: Date;
  /** True when `at` is the due time of a task; false when it is a bound (at the latest). */
  exact: boolean;
}

/** Options for {@linkcode findNextDue}. */
export interface FindNextDueOptions {
  /**
   * The most tasks to look at in all; past it the time found is a bound.
   * @default {1000}
   */
  scanLimit?: number;
  /**
   * The time now, in ms since the epoch (for the bounds of levels that are not read).
   * @default {Date.now()}
   */
  now?: number;
}

/**
 * The due time of the next task in the delay levels of `queue` that hold tasks (`levels`, by
 * level number), or null when they hold none.
 */
export async function findNextDue(
  connection: ChannelOpener,
  queue: string,
  levels: readonly number[],
  options: FindNextDueOptions = {},
): Promise<NextDue | null> {
  const { scanLimit = 1000, now = Date.now() } = options;
  let best = Infinity;
  let bound = Infinity;
  let budget = scanLimit;
  let exact = true;
  for (const level of [...levels].sort((a, b) => a - b)) {
    const name = delayLevelName(queue, level);
    const channel = await openChannel(connection);
    try {
      // Read only a queue proven classic: declared as the classic level it should be, a quorum
      // queue (or any other) refuses, closing the channel.
      await declareDurable(channel, name, {
        ...delayQueueArguments(queue, "classic", level),
        "x-queue-type": "classic",
      });
    } catch {
      bound = Math.min(bound, now + 2 * levelTtl(level));
      exact = false;
      await channel.close().catch(() => {});
      continue;
    }
    try {
      let message: GetMessage | false = false;
      while (budget > 0) {
        message = await channel.get(name, { noAck: false });
        if (message === false) break;
        budget--;
        const due = Date.parse(String(message.properties.headers?.[TASK_HEADERS.dueAt]));
        const rest = remainingAfter(message.fields.routingKey, level);
        if (!Number.isFinite(due) || rest === undefined) {
          // Not a task of ours: it is somewhere before 2^(k+1) ms from now.
          bound = Math.min(bound, now + 2 * levelTtl(level));
          exact = false;
          continue;
        }
        best = Math.min(best, due);
        if (due - rest >= best) break;
      }
      if (budget === 0 && message !== false) exact = false;
      channel.nackAll(true);
    } finally {
      await channel.close().catch(() => {});
    }
  }
  if (best === Infinity && bound === Infinity) return null;
  return { at: new Date(Math.min(best, bound)), exact };
}
