import assert from "node:assert/strict";
import { AmqpError } from "../lib/broker/errors.ts";
import { countReady, inspectTaskQueue } from "../demo/queue_check.ts";
import { BROKER_URL, openBroker, uniqueQueue } from "./_helpers.ts";

Deno.test("inspectTaskQueue() declares the queue and reports its tasks and consumers", async () => {
  const queue = uniqueQueue("inspect");
  await using broker = await openBroker();
  try {
    const warnings: string[] = [];
    const empty = await inspectTaskQueue(BROKER_URL, queue, {
      onWarning: (line) => warnings.push(line),
    });
    assert.deepEqual(empty, { queue, messageCount: 0, consumerCount: 0 });
    await broker.publish(queue, "one.", "two.");
    assert.equal((await inspectTaskQueue(BROKER_URL, queue)).messageCount, 2);
    assert.deepEqual(warnings, []);
  } finally {
    await broker.deleteQueues(queue);
  }
});

Deno.test("countReady() counts the ready tasks without declaring the queue", async () => {
  const queue = uniqueQueue("ready");
  await using broker = await openBroker();
  try {
    await assert.rejects(countReady(BROKER_URL, queue), (error) => {
      assert.ok(error instanceof AmqpError);
      assert.equal(error.code, 404);
      assert.match(error.message, new RegExp(`^Cannot check queue "${queue}": it does not exist$`));
      return true;
    });
    await inspectTaskQueue(BROKER_URL, queue);
    await broker.publish(queue, "one.", "two.", "three.");
    assert.equal(await countReady(BROKER_URL, queue), 3);
  } finally {
    await broker.deleteQueues(queue);
  }
});
