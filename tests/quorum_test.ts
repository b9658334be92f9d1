import assert from "node:assert/strict";
import { TASK_HEADERS } from "../lib/topology/task_headers.ts";
import { rabbitmqctl } from "./_broker_admin.ts";
import { openBroker, runScript, startScript, uniqueQueue, waitUntil } from "./_helpers.ts";

async function queueType(queue: string): Promise<string | undefined> {
  const rows = JSON.parse(
    await rabbitmqctl("list_queues", "-q", "--formatter", "json", "name", "type"),
  ) as Array<{ name: string; type: string }>;
  return rows.find((row) => row.name === queue)?.type;
}

Deno.test("--queue-type quorum declares quorum task and dead queues, and tasks flow through them", async () => {
  const queue = uniqueQueue("quorum");
  await using broker = await openBroker();
  try {
    await using worker = startScript("worker.ts", [
      "--queue",
      queue,
      "--queue-type",
      "quorum",
      "--dot-ms",
      "1",
    ]);
    await worker.waitForLines(/Waiting for messages/);
    assert.equal(await queueType(queue), "quorum");
    assert.equal(await queueType(`${queue}.dead`), "quorum");
    const sent = await runScript("new_task.ts", ["--queue", queue, "Replicated."], {
      env: { TASK_QUEUE_TYPE: "quorum" },
    });
    assert.equal(sent.code, 0, sent.stderr);
    assert.equal(sent.stderr, "", "no type warning when the types agree");
    await worker.waitForLines(/^ \[x\] Done$/);
  } finally {
    await broker.deleteQueues(queue, `${queue}.dead`);
  }
});

Deno.test("a queue that exists with another type is used as it is, with one warning naming both types", async () => {
  const queue = uniqueQueue("typeclash");
  await using broker = await openBroker();
  try {
    const classic = await runScript("new_task.ts", ["--queue", queue, "first"]);
    assert.equal(classic.code, 0, classic.stderr);
    const quorum = await runScript("new_task.ts", [
      "--queue",
      queue,
      "--queue-type",
      "quorum",
      "second",
    ]);
    assert.equal(quorum.code, 0, quorum.stderr);
    assert.equal(
      quorum.stderr,
      `Queue "${queue}" is a classic queue, not quorum as asked; using it as it is`,
    );
    assert.equal(await queueType(queue), "classic");
    assert.equal(await broker.ready(queue), 2);
    const bad = await runScript("new_task.ts", ["--queue-type", "stream", "x"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^Invalid queue type "stream": expected classic or quorum/);
  } finally {
    await broker.deleteQueues(queue);
  }
});

Deno.test("on a quorum queue a task that kills its workers is parked once its tries are used up", async () => {
  const queue = uniqueQueue("poison");
  await using broker = await openBroker();
  const args = [
    "--queue",
    queue,
    "--queue-type",
    "quorum",
    "--exec",
    "sleep 30",
    "--max-retries",
    "1",
  ];
  try {
    for (let crash = 0; crash < 2; crash++) {
      await using doomed = startScript("worker.ts", args);
      await doomed.waitForLines(/Waiting for messages/);
      if (crash === 0) await broker.publish(queue, "Poison.");
      await doomed.waitForLines(/^ \[x\] Received 'Poison\.'/);
      doomed.kill("SIGKILL");
      await doomed.status();
    }
    await using last = startScript("worker.ts", args);
    await waitUntil("the task parked", () => last.stderr.some((line) => /parked in/.test(line)));
    const channel = await broker.connection.createChannel();
    const parked = await channel.get(`${queue}.dead`, { noAck: true });
    await channel.close();
    assert.ok(parked, last.transcript());
    assert.equal(parked.content.toString(), "Poison.");
    assert.match(
      String(parked.properties.headers?.[TASK_HEADERS.reason]),
      /^delivered 2 times without finishing/,
    );
  } finally {
    await broker.deleteQueues(queue, `${queue}.dead`);
  }
});
