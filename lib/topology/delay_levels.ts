/**
 * Declaring a task queue's delay levels (see `delays.ts`) on the broker: their queues, checked as
 * the task queue is, their exchanges and bindings. Loaded only when delays are first used, so that
 * a program sending tasks due at once does not load it.
 *
 * @module
 */

import type { Channel, ChannelOpener } from "../amqp.ts";
import { AmqpError, brokerReason, replyCode } from "../broker/errors.ts";
import { DELAY_LEVELS, delayLevelName, levelBindingKey, levelTtl } from "./delays.ts";
import { declareOrAdopt, lossReason } from "./existing_queue.ts";

/** The type arguments of the task queue, which its delay levels share. */
export type DelayQueueType = "classic" | "quorum";

/**
 * The arguments of level `level`'s queue. Quorum levels dead-letter at least once (the task
 * stays in the level until the next one confirmed it), which needs `x-overflow: reject-publish`;
 * the broker's default for quorum queues, at most once, could drop a task on a leader change.
 */
export function delayQueueArguments(
  queue: string,
  type: DelayQueueType,
  level: number,
): Record<string, unknown> {
  const args: Record<string, unknown> = type === "quorum"
    ? {
      "x-queue-type": "quorum",
      "x-dead-letter-strategy": "at-least-once",
      "x-overflow": "reject-publish",
    }
    : {};
  args["x-message-ttl"] = levelTtl(level);
  if (level > 0) {
    args["x-dead-letter-exchange"] = delayLevelName(queue, level - 1);
  } else {
    // The last wait is over: through the default exchange, straight to the task queue.
    args["x-dead-letter-exchange"] = "";
    args["x-dead-letter-routing-key"] = queue;
  }
  return args;
}

/**
 * Why an existing level queue with `found` arguments would send its tasks on at the wrong time or
 * to the wrong place, whatever `--allow-lossy-queue` says: undefined when its TTL and
 * dead-lettering are ours.
 */
export function wrongDelayReason(
  expected: Readonly<Record<string, unknown>>,
  found: Readonly<Record<string, unknown>>,
): string | undefined {
  const ttl = found["x-message-ttl"];
  if (ttl !== expected["x-message-ttl"]) {
    return `its tasks wait ${
      ttl === undefined ? "forever (no x-message-ttl)" : `${ttl} ms`
    }, not the level's ${expected["x-message-ttl"]} ms`;
  }
  for (const arg of ["x-dead-letter-exchange", "x-dead-letter-routing-key"]) {
    if (found[arg] !== expected[arg]) {
      return found[arg] === undefined && arg === "x-dead-letter-exchange"
        ? "it drops its tasks when their time is up (no x-dead-letter-exchange)"
        : `its tasks go on to ${arg} "${found[arg] ?? "none"}", not "${expected[arg] ?? "none"}"`;
    }
  }
  return undefined;
}

/** Why an existing level queue could lose tasks: the task queue's reasons but its TTL. */
export function delayLossReason(
  args: Readonly<Record<string, unknown>>,
  properties: { durable: boolean; autoDelete: boolean },
): string | undefined {
  const { "x-message-ttl": _ttl, "x-delivery-limit": _limit, ...rest } = args;
  // Nothing consumes a level queue, so a delivery limit never applies.
  const loss = lossReason(rest, properties);
  if (loss) return loss;
  if (args["x-queue-type"] === "quorum" && args["x-dead-letter-strategy"] !== "at-least-once") {
    return "it dead-letters at most once (a task can be dropped on its way to the next level)";
  }
  return undefined;
}

/** Options for {@linkcode declareDelays}. */
export interface DeclareDelaysOptions {
  /**
   * Use level queues that can drop tasks (see {@linkcode delayLossReason}) rather than refuse them.
   * @default {false}
   */
  allowLossy?: boolean;
  /**
   * Called when a level queue exists with other, harmless, arguments and is used as it is.
   * @default {() => {}}
   */
  onWarning?: (message: string) => void;
}

/**
 * Declares every delay level of `queue` (which must exist): the level queues, checked as the
 * task queue is, the level exchanges and their bindings. The levels are declared side by side,
 * one channel each, so it takes a few round trips, not a hundred.
 *
 * @throws {AmqpError} when a level cannot be declared or a level queue exists with arguments that
 * would deliver early, late, elsewhere or not at all (code 406).
 */
export async function declareDelays(
  connection: ChannelOpener,
  queue: string,
  type: DelayQueueType,
  options: DeclareDelaysOptions = {},
): Promise<void> {
  const { allowLossy = false, onWarning = () => {} } = options;
  const levels = Array.from({ length: DELAY_LEVELS }, (_, level) => level);
  const channels: Channel[] = [];
  try {
    // The exchanges first, all of them: a binding needs both of its ends.
    await allOrFirstError(levels.map(async (level) => {
      const name = delayLevelName(queue, level);
      const expected = delayQueueArguments(queue, type, level);
      const { channel } = await declareOrAdopt(connection, name, expected, {
        allowLossy,
        onWarning,
        askedType: type,
        lossReason: delayLossReason,
        unusableReason: (found) => wrongDelayReason(expected, found),
      });
      channels[level] = channel;
      await step(
        `Cannot declare exchange "${name}"`,
        () => channel.assertExchange(name, "topic", { durable: true }),
      );
    }));
    await allOrFirstError(levels.map(async (level) => {
      const channel = channels[level]!;
      const name = delayLevelName(queue, level);
      await step(
        `Cannot bind queue "${name}"`,
        () => channel.bindQueue(name, name, levelBindingKey(level, 1)),
      );
      const next = levelBindingKey(level, 0);
      if (level > 0) {
        const lower = delayLevelName(queue, level - 1);
        await step(
          `Cannot bind exchange "${lower}"`,
          () => channel.bindExchange(lower, name, next),
        );
      } else {
        await step(`Cannot bind queue "${queue}"`, () => channel.bindQueue(queue, name, next));
      }
    }));
  } finally {
    await Promise.all(channels.map((channel) => channel?.close().catch(() => {})));
  }
}

async function step(what: string, run: () => Promise<unknown>): Promise<void> {
  try {
    await run();
  } catch (error) {
    throw new AmqpError(`${what}: ${brokerReason(error)}`, {
      cause: error,
      code: replyCode(error),
    });
  }
}

/** Like Promise.all, but waits for every promise before throwing the first error. */
async function allOrFirstError(promises: Promise<void>[]): Promise<void> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((result) => result.status === "rejected");
  if (failed) throw (failed as PromiseRejectedResult).reason;
}
