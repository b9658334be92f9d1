/**
 * Tasks that wait for their time: a fixed stack of delay levels beside each task queue, made of
 * nothing but durable queues with a per-queue TTL, dead-lettering and topic exchanges, so it needs
 * no plugin and works the same on classic and quorum queues (the idea of NServiceBus's RabbitMQ
 * transport, with levels of milliseconds and one stack per task queue).
 *
 * Level `k` (0 to 31) is a queue `<queue>.delay.Lkk` whose tasks all wait exactly 2^k ms, and a
 * topic exchange of the same name. A delay is written in binary, highest bit first, as the routing
 * key (`1.0.1.0` is 10 ms) and the task is published to the exchange of its highest bit. Every
 * level exchange looks at its own bit of the key: 1 sends the task into the level's queue, 0 on to
 * the next lower level's exchange (level 0's: to the task queue). When the level queue's TTL runs
 * out the task is dead-lettered, with its routing key unchanged, to the next lower level exchange,
 * and so on down: the waits add up to the delay, to the millisecond, through at most 32 queues.
 *
 * Every task in a level queue waits the same time, so the queue's order is also the order its
 * tasks leave it: none waits behind one that is due later (per-message TTLs would let a task due
 * in an hour hold back one due in a second). The number of queues is fixed, whatever the delays.
 *
 * This module is the arithmetic of it, which every sender of a task loads; declaring the levels
 * on the broker is in `delay_levels.ts`, loaded only when delays are first used.
 *
 * @module
 */

/** Delay levels of a task queue: level `k` waits 2^k ms. */
export const DELAY_LEVELS = 32;

/**
 * The longest delay, in milliseconds: 2^32 - 1, about 49.7 days (every level's bit set). The top
 * level waits 2^31 ms, within the longest TTL RabbitMQ documents for a queue (2^32 - 1 ms).
 *
 * @example Refuse a delay before sending it
 * ```ts
 * import { MAX_DELAY_MS } from "@workqueue/rabbitmq";
 *
 * const delay = 60 * 86_400_000; // 60 days
 * if (delay > MAX_DELAY_MS) console.error("Too far ahead: at most about 49 days");
 * ```
 */
export const MAX_DELAY_MS = 2 ** DELAY_LEVELS - 1;

/** When a task is due: after `delay` ms from its publish, or `at` a time. */
export interface Schedule {
  /**
   * Milliseconds to wait from the publish, 0 to {@linkcode MAX_DELAY_MS}; fractions round up.
   * @default {0}
   */
  delay?: number;
  /**
   * The time the task is due; one already past means at once.
   * @default {undefined}
   */
  at?: Date;
}

/** Where a delayed task is published: the exchange of its highest level, and its routing key. */
export interface DelayRoute {
  /** The level exchange, `<queue>.delay.Lkk`. */
  exchange: string;
  /** The delay in binary, highest bit first, one word per bit: `1.0.1.0` for 10 ms. */
  routingKey: string;
}

/**
 * Checks a schedule and gives the one to publish with, or undefined for a task due at once.
 *
 * @throws {TypeError} when both `delay` and `at` are given, or `at` is not a valid Date.
 * @throws {RangeError} when `delay` is not a number from 0 to {@linkcode MAX_DELAY_MS}.
 */
export function checkSchedule(schedule: Schedule): Schedule | undefined {
  const { delay, at } = schedule;
  if (delay !== undefined && at !== undefined) {
    throw new TypeError("Invalid schedule: give a delay or a time (at), not both");
  }
  if (at !== undefined) {
    if (!(at instanceof Date) || Number.isNaN(at.getTime())) {
      throw new TypeError(`Invalid time "${at}": expected a valid Date`);
    }
    return { at };
  }
  if (delay === undefined) return undefined;
  if (typeof delay !== "number" || !(delay >= 0 && delay <= MAX_DELAY_MS)) {
    throw new RangeError(
      `Invalid delay "${delay}": expected milliseconds from 0 to ${MAX_DELAY_MS} (about 49.7 days)`,
    );
  }
  return delay === 0 ? undefined : { delay };
}

/**
 * The milliseconds a task of `schedule` must still wait at `now`: whole milliseconds, rounded up
 * so that it is never due early; 0 for a time already past.
 *
 * @throws {RangeError} when `at` is more than {@linkcode MAX_DELAY_MS} away.
 */
export function delayOf(schedule: Schedule, now: number = Date.now()): number {
  const wait = schedule.at === undefined ? schedule.delay ?? 0 : schedule.at.getTime() - now;
  const ms = Math.max(0, Math.ceil(wait));
  if (ms > MAX_DELAY_MS) {
    throw new RangeError(
      `Invalid time "${schedule.at?.toISOString()}": at most ${MAX_DELAY_MS} ms (about 49.7 days) away`,
    );
  }
  return ms;
}

/** The name of level `level` of `queue`'s delays, queue and exchange alike: `<queue>.delay.L07`. */
export function delayLevelName(queue: string, level: number): string {
  return `${queue}.delay.L${String(level).padStart(2, "0")}`;
}

/** The names of every level of `queue`'s delays, level 0 first. */
export function delayLevelNames(queue: string): string[] {
  return Array.from({ length: DELAY_LEVELS }, (_, level) => delayLevelName(queue, level));
}

/** How long a task waits in level `level`'s queue: 2^level ms. */
export function levelTtl(level: number): number {
  return 2 ** level;
}

/**
 * The level of a delay's highest bit: where it starts waiting.
 *
 * @throws {RangeError} when `delayMs` is not a whole number from 1 to {@linkcode MAX_DELAY_MS}.
 */
export function startLevel(delayMs: number): number {
  checkDelayMs(delayMs);
  return 31 - Math.clz32(delayMs);
}

/**
 * The routing key of a delay: its bits, highest set bit first, as topic words (`1.0.1.0`).
 *
 * @throws {RangeError} as {@linkcode startLevel}.
 */
export function delayRoutingKey(delayMs: number): string {
  checkDelayMs(delayMs);
  return delayMs.toString(2).split("").join(".");
}

/** Where a task that waits `delayMs` (1 to {@linkcode MAX_DELAY_MS}) is published. */
export function delayRoute(queue: string, delayMs: number): DelayRoute {
  return {
    exchange: delayLevelName(queue, startLevel(delayMs)),
    routingKey: delayRoutingKey(delayMs),
  };
}

/** The delay a routing key of {@linkcode delayRoutingKey} stands for, or undefined for another key. */
export function delayOfRoutingKey(routingKey: string): number | undefined {
  if (!/^1(\.[01]){0,31}$/.test(routingKey)) return undefined;
  return parseInt(routingKey.replaceAll(".", ""), 2);
}

/**
 * What a task with `routingKey` still waits once it leaves level `level`'s queue: the bits of its
 * delay below that level. Undefined for a key that is not a delay's.
 */
export function remainingAfter(routingKey: string, level: number): number | undefined {
  const delay = delayOfRoutingKey(routingKey);
  return delay === undefined ? undefined : delay % levelTtl(level);
}

/**
 * The binding key by which level `level`'s exchange picks the tasks whose bit `level` is `bit`:
 * that bit is the `level + 1`th word from the end of the key (`#.1.*.*` for level 2).
 */
export function levelBindingKey(level: number, bit: 0 | 1): string {
  return `#.${bit}${".*".repeat(level)}`;
}

function checkDelayMs(delayMs: number): void {
  if (!Number.isInteger(delayMs) || delayMs < 1 || delayMs > MAX_DELAY_MS) {
    throw new RangeError(
      `Invalid delay "${delayMs}": expected whole milliseconds from 1 to ${MAX_DELAY_MS}`,
    );
  }
}
