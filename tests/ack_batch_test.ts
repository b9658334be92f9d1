import assert from "node:assert/strict";
import { setImmediate } from "node:timers";
import { AckBatch, type AckBatchOptions } from "../lib/consume/ack_batch.ts";
import type { Channel, ConsumeMessage, Message } from "../lib/amqp.ts";

/** What the channel was asked to do, in order. */
type Call =
  | { op: "ack"; tag: number; upTo: boolean }
  | { op: "nack"; tag: number; upTo: boolean; requeue: boolean };

/** A channel that records acks and nacks; `failAfter` calls succeed, then every call throws. */
class RecordingChannel implements Pick<Channel, "ack" | "nack"> {
  calls: Call[] = [];
  failAfter = Infinity;
  #log: string[];

  constructor(log: string[] = []) {
    this.#log = log;
  }

  ack(message: Message, allUpTo?: boolean): void {
    this.#check();
    const tag = message.fields.deliveryTag;
    this.calls.push({ op: "ack", tag, upTo: allUpTo ?? false });
    this.#log.push(`ack ${tag}`);
  }

  nack(message: Message, allUpTo?: boolean, requeue?: boolean): void {
    this.#check();
    const tag = message.fields.deliveryTag;
    this.calls.push({ op: "nack", tag, upTo: allUpTo ?? false, requeue: requeue ?? true });
    this.#log.push(`nack ${tag}`);
  }

  #check(): void {
    if (this.failAfter-- <= 0) throw new Error("Channel closed");
  }
}

function message(tag: number): ConsumeMessage {
  return {
    fields: { deliveryTag: tag },
    properties: {},
    content: new Uint8Array(),
  } as unknown as ConsumeMessage;
}

function batch(channel: RecordingChannel, options: AckBatchOptions = {}): AckBatch {
  return new AckBatch(channel as unknown as Channel, options);
}

/** Lets the current turn of the event loop end, so batched acks go out. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Lets the microtasks queued so far run (AckBatch's flush of the last task in hand is one). */
const microtasks = () => new Promise<void>((resolve) => queueMicrotask(resolve));

Deno.test("AckBatch acks the oldest finished tasks with one multiple ack", async () => {
  const channel = new RecordingChannel();
  const acks = batch(channel);
  const messages = [1, 2, 3, 4].map(message);
  for (const m of messages) acks.delivered(m);
  acks.ack(messages[0]!, "a");
  acks.ack(messages[2]!, "c");
  acks.ack(messages[1]!, "b");
  assert.deepEqual(channel.calls, [], "nothing is sent before the turn ends");
  await nextTurn();
  assert.deepEqual(channel.calls, [{ op: "ack", tag: 3, upTo: true }]);
});

Deno.test("AckBatch acks tasks finished in the same turn together, individually behind a running one", async () => {
  const channel = new RecordingChannel();
  const acks = batch(channel);
  const messages = [1, 2, 3, 4, 5].map(message);
  for (const m of messages) acks.delivered(m);
  // 1 and 2 are the oldest: one multiple ack; 3 still runs, so 4 and 5 are acked one by one.
  acks.ack(messages[4]!, "e");
  acks.ack(messages[0]!, "a");
  acks.ack(messages[3]!, "d");
  acks.ack(messages[1]!, "b");
  await nextTurn();
  assert.deepEqual(channel.calls[0], { op: "ack", tag: 2, upTo: true });
  assert.deepEqual(channel.calls.slice(1).toSorted((a, b) => a.tag - b.tag), [
    { op: "ack", tag: 4, upTo: false },
    { op: "ack", tag: 5, upTo: false },
  ]);
  // 3 is now the only one in hand: acked before the turn ends, once the microtasks ran.
  acks.ack(messages[2]!, "c");
  await microtasks();
  assert.deepEqual(channel.calls.at(-1), { op: "ack", tag: 3, upTo: true });
  assert.equal(channel.calls.length, 4);
});

Deno.test("AckBatch acks individually when the oldest task is still running", async () => {
  const channel = new RecordingChannel();
  const acks = batch(channel);
  const messages = [1, 2, 3].map(message);
  for (const m of messages) acks.delivered(m);
  acks.ack(messages[1]!, "b");
  acks.ack(messages[2]!, "c");
  await nextTurn();
  assert.deepEqual(channel.calls.toSorted((a, b) => a.tag - b.tag), [
    { op: "ack", tag: 2, upTo: false },
    { op: "ack", tag: 3, upTo: false },
  ]);
});

Deno.test("AckBatch acks within the turn when nothing else is in hand (prefetch 1)", async () => {
  const channel = new RecordingChannel();
  const acks = batch(channel);
  for (const tag of [1, 2, 3]) {
    const m = message(tag);
    acks.delivered(m);
    acks.ack(m, `t${tag}`);
    // Not a turn later: at prefetch 1 the next delivery waits for this ack.
    await microtasks();
    assert.deepEqual(channel.calls.at(-1), { op: "ack", tag, upTo: true });
  }
  assert.equal(channel.calls.length, 3);
});

Deno.test("AckBatch acks within the turn when the last task in hand finishes", async () => {
  const channel = new RecordingChannel();
  const acks = batch(channel);
  const [first, second] = [message(1), message(2)];
  acks.delivered(first);
  acks.delivered(second);
  acks.ack(first, "a");
  assert.deepEqual(channel.calls, []);
  acks.ack(second, "b");
  await microtasks();
  assert.deepEqual(channel.calls, [{ op: "ack", tag: 2, upTo: true }]);
  await nextTurn();
  assert.equal(channel.calls.length, 1, "the scheduled flush finds nothing left to send");
});

Deno.test("AckBatch calls beforeFlush right before it sends acks, and not when there are none", async () => {
  const log: string[] = [];
  const channel = new RecordingChannel(log);
  const acks = batch(channel, { beforeFlush: () => log.push("beforeFlush") });
  acks.flush();
  assert.deepEqual(log, []);
  const messages = [1, 2, 3].map(message);
  for (const m of messages) acks.delivered(m);
  acks.ack(messages[0]!, "a");
  acks.ack(messages[2]!, "c");
  assert.deepEqual(log, []);
  await nextTurn();
  assert.deepEqual(log, ["beforeFlush", "ack 1", "ack 3"]);
  acks.ack(messages[1]!, "b");
  await microtasks();
  assert.deepEqual(log, ["beforeFlush", "ack 1", "ack 3", "beforeFlush", "ack 2"]);
});

Deno.test("AckBatch.requeue() nacks with requeue at once and the task no longer holds back acks", async () => {
  const channel = new RecordingChannel();
  const acks = batch(channel);
  const [first, second] = [message(1), message(2)];
  acks.delivered(first);
  acks.delivered(second);
  assert.equal(acks.requeue(first), true);
  assert.deepEqual(channel.calls, [{ op: "nack", tag: 1, upTo: false, requeue: true }]);
  // The requeued task is settled: the other one is now the only one in hand, acked this turn.
  acks.ack(second, "b");
  await microtasks();
  assert.deepEqual(channel.calls.at(-1), { op: "ack", tag: 2, upTo: true });
});

Deno.test("AckBatch.requeue() returns false when the channel is gone", () => {
  const channel = new RecordingChannel();
  channel.failAfter = 0;
  const acks = batch(channel);
  const m = message(1);
  acks.delivered(m);
  assert.equal(acks.requeue(m), false);
});

Deno.test("AckBatch calls onStale for each pending task when its channel throws on ack", async () => {
  const channel = new RecordingChannel();
  channel.failAfter = 0;
  const stale: string[] = [];
  const acks = batch(channel, { onStale: (id) => stale.push(id) });
  const messages = [1, 2, 3, 4].map(message);
  for (const m of messages) acks.delivered(m);
  acks.ack(messages[0]!, "a");
  acks.ack(messages[2]!, "c");
  acks.ack(messages[3]!, "d");
  await nextTurn();
  assert.deepEqual(stale.toSorted(), ["a", "c", "d"]);
  assert.deepEqual(channel.calls, []);
  acks.flush();
  assert.equal(stale.length, 3, "a stale task is reported once");
});

Deno.test("AckBatch reports as stale only the tasks whose acks were not sent when the channel closes mid-flush", async () => {
  const channel = new RecordingChannel();
  channel.failAfter = 1;
  const stale: string[] = [];
  const acks = batch(channel, { onStale: (id) => stale.push(id) });
  const messages = [1, 2, 3].map(message);
  for (const m of messages) acks.delivered(m);
  acks.ack(messages[0]!, "a");
  acks.ack(messages[2]!, "c");
  await nextTurn();
  assert.deepEqual(channel.calls, [{ op: "ack", tag: 1, upTo: true }]);
  assert.deepEqual(stale, ["c"]);
});

/** A small deterministic random source, so a failure can be replayed. */
function random(seed: number): () => number {
  return () => {
    seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
    return seed / 2_147_483_648;
  };
}

/**
 * What the broker holds of one channel: the unacked deliveries. Replays the channel's calls as
 * the broker would, failing on any that settles a task still running or one already settled
 * (which closes a real channel: PRECONDITION_FAILED - unknown delivery tag).
 */
class BrokerModel {
  unacked = new Set<number>();
  #seen = 0;

  constructor(readonly channel: RecordingChannel, readonly finished: Set<number>) {}

  replay(context: string): void {
    for (const call of this.channel.calls.slice(this.#seen)) {
      if (call.op === "nack") {
        assert.ok(this.unacked.delete(call.tag), `${context}: nack of settled ${call.tag}`);
        continue;
      }
      assert.ok(this.unacked.has(call.tag), `${context}: ack of settled ${call.tag}`);
      const covered = call.upTo ? [...this.unacked].filter((t) => t <= call.tag) : [call.tag];
      for (const t of covered) {
        assert.ok(this.finished.has(t), `${context}: ack of ${call.tag} covers running ${t}`);
        this.unacked.delete(t);
      }
    }
    this.#seen = this.channel.calls.length;
  }
}

Deno.test("AckBatch acks nothing before its task finished, and every finished task once", async () => {
  for (let seed = 1; seed <= 50; seed++) {
    const next = random(seed);
    const channel = new RecordingChannel();
    const acks = batch(channel);
    const finished = new Set<number>();
    const broker = new BrokerModel(channel, finished);
    const running: number[] = [];
    let tag = 0;
    // Deliveries, finishes and requeues in random order over a number of turns.
    for (let turn = 0; turn < 30; turn++) {
      for (let step = Math.floor(next() * 6); step > 0; step--) {
        const roll = next();
        if (roll < 0.45 || running.length === 0) {
          acks.delivered(message(++tag));
          broker.unacked.add(tag);
          running.push(tag);
          continue;
        }
        const done = running.splice(Math.floor(next() * running.length), 1)[0]!;
        if (roll < 0.9) {
          finished.add(done);
          acks.ack(message(done), `t${done}`);
        } else {
          assert.equal(acks.requeue(message(done)), true);
        }
        broker.replay(`seed ${seed}`);
      }
      await nextTurn();
      broker.replay(`seed ${seed}`);
    }
    // Everything finished has been acked; only the running tasks are still the broker's.
    assert.deepEqual(
      [...broker.unacked].toSorted((a, b) => a - b),
      running.toSorted((a, b) => a - b),
    );
  }
});
