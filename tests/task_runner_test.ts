import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { AckBatch } from "../lib/consume/ack_batch.ts";
import { Deadlines } from "../lib/consume/deadlines.ts";
import { type Delivery, runTask, type TaskEvent } from "../lib/consume/task_runner.ts";
import type { Channel, ConsumeMessage, Message } from "../lib/amqp.ts";
import { TaskQueue } from "../lib/topology/task_queue.ts";
import { FakeClock } from "./_fake_clock.ts";

/** A channel that records the delivery tags it acked. */
class AckRecorder implements Pick<Channel, "ack" | "nack"> {
  acked: number[] = [];
  ack(message: Message): void {
    this.acked.push(message.fields.deliveryTag);
  }
  nack(): void {
    throw new Error("nothing should be requeued here");
  }
}

function delivery(channel: AckRecorder, tag: number): Delivery {
  const message = {
    content: Buffer.from(`task ${tag}`),
    fields: {
      deliveryTag: tag,
      redelivered: false,
      exchange: "",
      routingKey: "q",
      consumerTag: "c",
    },
    properties: { headers: {}, messageId: `id-${tag}` },
  } as unknown as ConsumeMessage;
  const acks = new AckBatch(channel as unknown as Channel);
  acks.delivered(message);
  // A task that succeeds needs neither: using them would fail the test.
  const unused = new Proxy({}, {
    get: (_, name) => {
      throw new Error(`unexpected use of ${String(name)}`);
    },
  });
  return {
    acks,
    message,
    mover: unused as Delivery["mover"],
    holder: unused as Delivery["holder"],
  };
}

function setUp(timeout = 1000) {
  const clock = new FakeClock();
  const deadlines = new Deadlines(timeout, { clock });
  const policy = { queue: new TaskQueue("q"), hostname: "test", deadlines };
  const events: TaskEvent[] = [];
  return { clock, deadlines, policy, events, onEvent: (event: TaskEvent) => events.push(event) };
}

Deno.test("runTask() settles a task whose handler returns at once within the call: no promise", async () => {
  const { clock, deadlines, policy, events, onEvent } = setUp();
  try {
    const channel = new AckRecorder();
    const seen: string[] = [];
    const result = runTask(
      delivery(channel, 7),
      (task) => {
        seen.push(task.text());
        clock.advance(12);
      },
      policy,
      onEvent,
    );
    assert.equal(result, undefined);
    assert.deepEqual(seen, ["task 7"]);
    assert.deepEqual(events.map((event) => event.type), ["received", "done"]);
    assert.deepEqual(events[1], { type: "done", id: "id-7", attempt: 1, durationMs: 12 });
    // The ack goes out at the end of the turn, with any other task finished in it.
    assert.deepEqual(channel.acked, []);
    await Promise.resolve();
    assert.deepEqual(channel.acked, [7]);
  } finally {
    deadlines.close();
  }
});

Deno.test("runTask() waits for a handler's promise, then acks", async () => {
  const { deadlines, policy, events, onEvent } = setUp();
  try {
    const channel = new AckRecorder();
    const { promise, resolve } = Promise.withResolvers<string>();
    const result = runTask(delivery(channel, 3), () => promise, policy, onEvent);
    assert.ok(result instanceof Promise);
    await Promise.resolve();
    assert.deepEqual(events.map((event) => event.type), ["received"]);
    resolve("fine");
    await result;
    await Promise.resolve();
    assert.deepEqual(events.map((event) => event.type), ["received", "done"]);
    assert.deepEqual(channel.acked, [3]);
  } finally {
    deadlines.close();
  }
});

Deno.test("runTask() gives the handler a signal that aborts when the try runs out of time, and fails the try", async () => {
  const { clock, deadlines, policy, events, onEvent } = setUp(100);
  try {
    const channel = new AckRecorder();
    const task = delivery(channel, 1);
    // No broker to move the failed task to: it is held, never acked, never lost.
    const noBroker = () => Promise.reject(new Error("no broker"));
    const held: unknown[] = [];
    task.mover = { delays: noBroker, channel: noBroker, forgetDelays: () => {} };
    task.holder = { hold: (entry) => void held.push(entry) };
    let signal: AbortSignal | undefined;
    const result = runTask(
      task,
      (_task, given) => {
        signal = given;
        return new Promise<never>(() => {});
      },
      policy,
      onEvent,
    );
    assert.ok(result instanceof Promise);
    assert.equal(signal?.aborted, false);
    clock.advance(100);
    assert.equal(signal?.aborted, true);
    await result;
    assert.equal(held.length, 1);
    assert.deepEqual(channel.acked, []);
    const last = events.at(-1);
    assert.equal(last?.type, "held");
    assert.match(last?.type === "held" ? last.reason : "", /timeout after 100 ms/);
  } finally {
    deadlines.close();
  }
});
