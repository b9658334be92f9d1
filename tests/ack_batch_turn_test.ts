import assert from "node:assert/strict";
import { setImmediate } from "node:timers";
import type { Channel, ConsumeMessage } from "../lib/amqp.ts";
import { AckBatch } from "../lib/consume/ack_batch.ts";

/** A channel that records the acks sent on it: `[deliveryTag, multiple]`. */
function recordingChannel() {
  const acks: Array<[number, boolean]> = [];
  const channel = {
    ack: (message: ConsumeMessage, allUpTo = false) =>
      acks.push([message.fields.deliveryTag, allUpTo]),
    nack: () => {},
  } as unknown as Channel;
  return { acks, channel };
}

function delivery(tag: number): ConsumeMessage {
  return { fields: { deliveryTag: tag }, properties: {}, content: new Uint8Array() } as never;
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

Deno.test("AckBatch: tasks finished as they are delivered, in one turn, go out as one multiple ack", async () => {
  const { acks, channel } = recordingChannel();
  const batch = new AckBatch(channel);
  // As amqplib hands over the deliveries of one socket read, to a handler that returns at once.
  for (const tag of [1, 2, 3]) {
    const message = delivery(tag);
    batch.delivered(message);
    batch.ack(message, `task-${tag}`);
  }
  assert.deepEqual(acks, [], "nothing is sent while the turn goes on");
  await turn();
  assert.deepEqual(acks, [[3, true]]);
});

Deno.test("AckBatch: the ack of the only task in hand goes out before the turn ends", async () => {
  const { acks, channel } = recordingChannel();
  let flushed = 0;
  const batch = new AckBatch(channel, { beforeFlush: () => flushed++ });
  const message = delivery(1);
  batch.delivered(message);
  batch.ack(message, "task-1");
  // Within this turn (prefetch 1: the next delivery waits for it), not at the next one.
  await Promise.resolve();
  assert.deepEqual(acks, [[1, true]]);
  assert.equal(flushed, 1, "beforeFlush ran once, before the ack");
});

Deno.test("AckBatch: a task still running is not acked with the finished ones after it", async () => {
  const { acks, channel } = recordingChannel();
  const batch = new AckBatch(channel);
  const [first, second, third] = [delivery(1), delivery(2), delivery(3)];
  for (const message of [first, second, third]) batch.delivered(message);
  batch.ack(third, "task-3");
  batch.ack(first, "task-1");
  await turn();
  assert.deepEqual(acks, [[1, true], [3, false]]);
  batch.ack(second, "task-2");
  await turn();
  assert.deepEqual(acks.slice(2), [[2, true]]);
});
