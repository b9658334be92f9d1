import assert from "node:assert/strict";
import { TaskQueue } from "../lib/topology/task_queue.ts";
import { TaskPublisher } from "../lib/produce/publisher.ts";
import { openBroker, runScript, uniqueQueue } from "./_helpers.ts";

Deno.test("TaskPublisher.publish() resolves with the task id once the broker confirmed it", async () => {
  const queue = uniqueQueue("pub");
  await using broker = await openBroker();
  try {
    const publisher = await TaskPublisher.open(broker.connection, new TaskQueue(queue));
    const id = await publisher.publish("payload", { id: "task-1" });
    assert.equal(id, "task-1");
    assert.equal(await broker.ready(queue), 1);
    await publisher.close();
  } finally {
    await broker.deleteQueues(queue);
  }
});

Deno.test("TaskPublisher.publish() rejects a task the broker returns as unroutable", async () => {
  const queue = uniqueQueue("gone");
  await using broker = await openBroker();
  const publisher = await TaskPublisher.open(broker.connection, new TaskQueue(queue));
  try {
    await broker.deleteQueues(queue);
    await assert.rejects(publisher.publish("lost?"), {
      name: "AmqpError",
      message: new RegExp(`was not sent: no queue "${queue}" to route it to`),
    });
  } finally {
    await publisher.close();
  }
});

Deno.test("new_task.ts exits 1 when the broker nacks the task (queue full, reject-publish)", async () => {
  const queue = uniqueQueue("full");
  await using broker = await openBroker();
  const channel = await broker.connection.createChannel();
  await channel.assertQueue(queue, {
    durable: true,
    arguments: { "x-max-length": 1, "x-overflow": "reject-publish" },
  });
  await channel.close();
  try {
    const first = await runScript("new_task.ts", ["--queue", queue, "fits"]);
    assert.equal(first.code, 0, first.stderr);
    const second = await runScript("new_task.ts", ["--queue", queue, "overflows"]);
    assert.equal(second.code, 1);
    assert.equal(second.stdout, "");
    assert.match(
      second.stderr.split("\n").at(-1)!,
      /^Task [0-9a-f-]+ was not sent: the broker refused it \(nack\)$/,
    );
    assert.equal(await broker.ready(queue), 1);
  } finally {
    await broker.deleteQueues(queue);
  }
});
