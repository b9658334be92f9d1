import assert from "node:assert/strict";
import { topicMatches } from "./_topic.ts";
import { parseDuration, parseTime } from "../lib/cli/duration.ts";
import {
  checkSchedule,
  DELAY_LEVELS,
  delayLevelName,
  delayLevelNames,
  delayOf,
  delayOfRoutingKey,
  delayRoute,
  delayRoutingKey,
  levelBindingKey,
  levelTtl,
  MAX_DELAY_MS,
  remainingAfter,
  startLevel,
} from "../lib/topology/delays.ts";
import {
  delayLossReason,
  delayQueueArguments,
  wrongDelayReason,
} from "../lib/topology/delay_levels.ts";
import { TaskQueue } from "../lib/topology/task_queue.ts";
import { formatStats, formatWait, statsJson } from "../commands/stats.ts";
import type { QueueStats } from "../lib/operate/queue_stats.ts";

const DAY_MS = 86_400_000;

/**
 * Follows a task through the levels as the broker would: the bindings of each level exchange
 * decide between its queue and the next exchange, and each level queue waits its TTL and
 * dead-letters to its `x-dead-letter-exchange`. Returns the queues it waited in and for how long.
 */
function walk(queue: string, delayMs: number): { waited: string[]; total: number; end: string } {
  const { exchange, routingKey } = delayRoute(queue, delayMs);
  const waited: string[] = [];
  let total = 0;
  let at = Number(exchange.slice(-2));
  for (let hops = 0; hops <= DELAY_LEVELS; hops++) {
    const toQueue = topicMatches(levelBindingKey(at, 1), routingKey);
    const onward = topicMatches(levelBindingKey(at, 0), routingKey);
    assert.ok(toQueue !== onward, `exactly one binding of level ${at} matches ${routingKey}`);
    if (toQueue) {
      const name = delayLevelName(queue, at);
      const args = delayQueueArguments(queue, "classic", at);
      waited.push(name);
      total += args["x-message-ttl"] as number;
      if (at === 0) {
        assert.equal(args["x-dead-letter-exchange"], "");
        return { waited, total, end: args["x-dead-letter-routing-key"] as string };
      }
      assert.equal(args["x-dead-letter-exchange"], delayLevelName(queue, at - 1));
    } else if (at === 0) {
      return { waited, total, end: queue }; // level 0's "0" binding is the task queue's
    }
    at--;
  }
  throw new Error("the walk did not end");
}

Deno.test("delay routing keys spell the delay in binary, highest bit first", () => {
  assert.equal(delayRoutingKey(1), "1");
  assert.equal(delayRoutingKey(10), "1.0.1.0");
  assert.equal(delayRoutingKey(1000), "1.1.1.1.1.0.1.0.0.0");
  assert.equal(delayRoutingKey(MAX_DELAY_MS), Array(32).fill("1").join("."));
  for (const delay of [1, 2, 3, 10, 1000, 90_000, 2_592_000_000, MAX_DELAY_MS]) {
    assert.equal(delayOfRoutingKey(delayRoutingKey(delay)), delay);
  }
  for (const key of ["", "0", "0.1", "1.2", "1..0", "1.0.", "x", Array(33).fill("1").join(".")]) {
    assert.equal(delayOfRoutingKey(key), undefined, key);
  }
});

Deno.test("a delay starts at the level of its highest bit, and leaves each level with the bits below it", () => {
  assert.equal(startLevel(1), 0);
  assert.equal(startLevel(2), 1);
  assert.equal(startLevel(1023), 9);
  assert.equal(startLevel(1024), 10);
  assert.equal(startLevel(MAX_DELAY_MS), 31);
  const thirtyDays = 30 * 86_400_000;
  assert.equal(startLevel(thirtyDays), 31);
  assert.deepEqual(delayRoute("jobs", thirtyDays), {
    exchange: "jobs.delay.L31",
    routingKey: delayRoutingKey(thirtyDays),
  });
  assert.equal(remainingAfter(delayRoutingKey(thirtyDays), 31), thirtyDays - 2 ** 31);
  assert.equal(remainingAfter(delayRoutingKey(10), 3), 2);
  assert.equal(remainingAfter(delayRoutingKey(10), 1), 0);
  assert.equal(remainingAfter("not.a.key", 3), undefined);
  for (const bad of [0, -1, 1.5, MAX_DELAY_MS + 1, Number.NaN]) {
    assert.throws(() => startLevel(bad), { name: "RangeError" });
    assert.throws(() => delayRoutingKey(bad), { name: "RangeError" });
  }
});

Deno.test("level bindings pick exactly one way at every level, and the waits add up to the delay", () => {
  const delays = [1, 2, 3, 7, 10, 50, 999, 1000, 1024, 65_535, 90_000, 3_600_000];
  delays.push(2_592_000_000, 2 ** 31, 2 ** 31 + 1, MAX_DELAY_MS);
  for (let i = 0; i < 200; i++) delays.push(1 + Math.floor(Math.random() * MAX_DELAY_MS));
  for (const delay of delays) {
    const { waited, total, end } = walk("jobs", delay);
    assert.equal(total, delay, `${delay} ms waits ${total} ms`);
    assert.equal(end, "jobs");
    // One queue per set bit, highest first: never more than 32, never one twice.
    assert.equal(waited.length, delay.toString(2).replaceAll("0", "").length);
    assert.deepEqual(waited, [...waited].sort().reverse());
  }
});

Deno.test("level k's queue waits 2^k ms; 32 levels reach 2^32 - 1 ms, over 49 days", () => {
  assert.equal(DELAY_LEVELS, 32);
  assert.equal(MAX_DELAY_MS, 4_294_967_295);
  assert.ok(MAX_DELAY_MS > 30 * 86_400_000 && MAX_DELAY_MS < 50 * 86_400_000);
  for (let level = 0; level < DELAY_LEVELS; level++) assert.equal(levelTtl(level), 2 ** level);
  // RabbitMQ's largest TTL is 2^32 - 1 ms: the top level's 2^31 is within it.
  assert.ok(levelTtl(DELAY_LEVELS - 1) <= 2 ** 32 - 1);
  assert.equal(levelBindingKey(0, 1), "#.1");
  assert.equal(levelBindingKey(2, 0), "#.0.*.*");
  assert.deepEqual(delayLevelNames("q").slice(0, 3), ["q.delay.L00", "q.delay.L01", "q.delay.L02"]);
  assert.equal(delayLevelNames("q").length, 32);
  assert.equal(new TaskQueue("q").delayQueues.at(-1), "q.delay.L31");
});

Deno.test("quorum level queues dead-letter at least once, with reject-publish; classic ones have no type arguments", () => {
  assert.deepEqual(delayQueueArguments("jobs", "classic", 5), {
    "x-message-ttl": 32,
    "x-dead-letter-exchange": "jobs.delay.L04",
  });
  assert.deepEqual(delayQueueArguments("jobs", "quorum", 0), {
    "x-queue-type": "quorum",
    "x-dead-letter-strategy": "at-least-once",
    "x-overflow": "reject-publish",
    "x-message-ttl": 1,
    "x-dead-letter-exchange": "",
    "x-dead-letter-routing-key": "jobs",
  });
});

Deno.test("an existing level queue is refused when it would send tasks on at the wrong time or place, or drop them", () => {
  const ours = delayQueueArguments("jobs", "classic", 3);
  assert.equal(wrongDelayReason(ours, ours), undefined);
  assert.match(wrongDelayReason(ours, { ...ours, "x-message-ttl": 9 })!, /wait 9 ms, not .* 8 ms/);
  assert.match(wrongDelayReason(ours, { "x-dead-letter-exchange": "jobs.delay.L02" })!, /forever/);
  assert.match(
    wrongDelayReason(ours, { "x-message-ttl": 8 })!,
    /drops its tasks when their time is up/,
  );
  assert.match(
    wrongDelayReason(ours, { ...ours, "x-dead-letter-routing-key": "other" })!,
    /x-dead-letter-routing-key "other", not "none"/,
  );
  const durable = { durable: true, autoDelete: false };
  assert.equal(delayLossReason(ours, durable), undefined, "its TTL is the point");
  assert.equal(delayLossReason({ ...ours, "x-delivery-limit": 5 }, durable), undefined);
  assert.match(delayLossReason({ ...ours, "x-expires": 10 }, durable)!, /deletes itself/);
  assert.match(delayLossReason(ours, { durable: false, autoDelete: false })!, /not durable/);
  const quorum = delayQueueArguments("jobs", "quorum", 3);
  assert.equal(delayLossReason(quorum, durable), undefined);
  const { "x-dead-letter-strategy": _, ...atMostOnce } = quorum;
  assert.match(delayLossReason(atMostOnce, durable)!, /at most once/);
});

Deno.test("checkSchedule() takes a delay or a time, and delayOf() rounds up and never goes below 0", () => {
  assert.equal(checkSchedule({}), undefined);
  assert.equal(checkSchedule({ delay: 0 }), undefined, "due at once");
  assert.deepEqual(checkSchedule({ delay: 1500 }), { delay: 1500 });
  const at = new Date("2026-12-24T18:00:00Z");
  assert.deepEqual(checkSchedule({ at }), { at });
  assert.throws(() => checkSchedule({ delay: 1, at }), { name: "TypeError" });
  assert.throws(() => checkSchedule({ at: new Date("nope") }), { name: "TypeError" });
  for (const delay of [-1, MAX_DELAY_MS + 1, Number.NaN, Infinity]) {
    assert.throws(() => checkSchedule({ delay }), { name: "RangeError" }, String(delay));
  }
  const now = at.getTime() - 90_000;
  assert.equal(delayOf({ at }, now), 90_000);
  assert.equal(delayOf({ at }, now + 0.5), 90_000, "rounded up, never early");
  assert.equal(delayOf({ at }, at.getTime() + 5000), 0, "a time past is due at once");
  assert.equal(delayOf({ delay: 1.2 }), 2);
  assert.throws(() => delayOf({ at: new Date(now + MAX_DELAY_MS + 90_001) }, now), {
    name: "RangeError",
  });
});

Deno.test("parseDuration() reads 90s, 2h, 1h30m, 1500ms, 30d; parseTime() reads ISO 8601", () => {
  assert.equal(parseDuration("90s"), 90_000);
  assert.equal(parseDuration("2h"), 7_200_000);
  assert.equal(parseDuration("1h30m"), 5_400_000);
  assert.equal(parseDuration("1.5h"), 5_400_000);
  assert.equal(parseDuration("1500ms"), 1500);
  assert.equal(parseDuration("30d"), 2_592_000_000);
  assert.equal(parseDuration("1.1s"), 1100);
  assert.equal(parseDuration("0s"), 0);
  for (const bad of ["", "90", "s", "1m1h", "2h 3m", "-1s", "1w", "1e3ms"]) {
    assert.throws(() => parseDuration(bad), { name: "RangeError" }, bad);
  }
  assert.equal(parseTime("2026-12-24T18:00:00Z").toISOString(), "2026-12-24T18:00:00.000Z");
  assert.equal(parseTime("2026-12-24T19:00:00+01:00").toISOString(), "2026-12-24T18:00:00.000Z");
  for (const bad of ["2026-02-30T18:00:00Z", "2026-13-01T00:00Z", "tomorrow", "2026-12-24"]) {
    assert.throws(() => parseTime(bad), { name: "RangeError" }, bad);
  }
});

Deno.test("stats says how many tasks wait for their time and when the next is due, exactly or at the latest", () => {
  const base: QueueStats = {
    name: "jobs",
    ready: 2,
    unacked: null,
    consumers: 1,
    waiting: 5,
    nextDue: null,
    dead: 0,
    delayQueues: [],
    deadQueue: null,
    rates: null,
    managementError: null,
  };
  const now = Date.parse("2026-12-24T14:40:00Z");
  const at = new Date("2026-12-24T18:00:00Z");
  assert.equal(
    formatStats(base, now),
    'Queue "jobs": 2 ready, unacked unknown, 1 consumer; 5 waiting for their time; 0 parked',
  );
  assert.match(
    formatStats({ ...base, nextDue: { at, exact: true } }, now),
    /\n {2}next due 2026-12-24T18:00:00\.000Z \(in 3 h 20 min\)$/,
  );
  assert.match(
    formatStats({ ...base, nextDue: { at, exact: false } }, now),
    /\n {2}next due by 2026-12-24T18:00:00\.000Z at the latest \(in 3 h 20 min\)$/,
  );
  assert.match(
    formatStats({ ...base, nextDue: { at, exact: true } }, at.getTime() + 5),
    /\(now\)$/,
  );
  assert.deepEqual(statsJson({ ...base, nextDue: { at, exact: true } }).next_due, {
    at: "2026-12-24T18:00:00.000Z",
    exact: true,
  });
  assert.equal(formatWait(45_200), "45.2 s");
  assert.equal(formatWait(12 * 60_000), "12 min");
  assert.equal(formatWait(30 * DAY_MS - 3_600_000), "29 d 23 h");
});
