/**
 * Tries are counted from what this project wrote and what the broker counted for this very copy
 * of a task: never twice, never from another program's headers.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { deleteWithDelays, openBroker, runScript, startScript, uniqueQueue } from "./_helpers.ts";

async function cleanup(queue: string, ...extra: string[]): Promise<void> {
  await using broker = await openBroker();
  const channel = await broker.connection.createChannel();
  await deleteWithDelays(channel, [queue, `${queue}.dead`, ...extra]);
  await channel.close();
}

Deno.test("headers another program set are not tries: a task with task-attempts and x-delivery-count runs on its first try", async () => {
  const queue = uniqueQueue("foreignhdr");
  try {
    await using broker = await openBroker();
    const channel = await broker.connection.createConfirmChannel();
    await channel.assertQueue(queue, { durable: true });
    for (
      const headers of [{ "task-attempts": "2" }, { "x-delivery-count": 50 }, {
        "task-attempts": 9,
      }]
    ) {
      channel.sendToQueue(queue, Buffer.from("job"), { persistent: true, headers });
    }
    await channel.waitForConfirms();
    await channel.close();
    await using worker = startScript("worker.ts", [
      "--queue",
      queue,
      "--max-tasks",
      "3",
      "--dot-ms",
      "0",
      "--max-retries",
      "1",
    ]);
    assert.equal((await worker.status()).code, 0, worker.stderr.join("\n"));
    assert.equal(worker.matching(/^ \[x\] Done$/).length, 3, worker.stdout.join("\n"));
    assert.ok(!worker.matching(/attempt/).length, "every task was on its first try");
    assert.ok(!worker.stderr.some((line) => /parked|died/.test(line)), worker.stderr.join("\n"));
    assert.equal(await broker.ready(`${queue}.dead`), 0);
  } finally {
    await cleanup(queue);
  }
});

Deno.test("quorum: after a worker crash a task's tries go 2, 3, 4, and requeue starts it afresh", async () => {
  const queue = uniqueQueue("qcount");
  const out = await Deno.makeTempDir();
  try {
    const args = [
      "--queue",
      queue,
      "--queue-type",
      "quorum",
      "--max-retries",
      "3",
      "--retry-delay",
      "100",
      // The first try kills the worker itself; every later one fails.
      "--exec",
      'if [ ! -e "$OUT/crashed" ]; then touch "$OUT/crashed"; kill -9 $PPID; sleep 5; fi; exit 3',
    ];
    await using first = startScript("worker.ts", args, { env: { OUT: out } });
    await first.waitForLines(/Waiting for messages/);
    const sent = await runScript("new_task.ts", ["--queue", queue, "--queue-type", "quorum", "x"]);
    assert.equal(sent.code, 0, sent.stderr);
    const crashed = await first.status();
    assert.notEqual(crashed.code, 0, "the first worker was killed");
    await using second = startScript("worker.ts", args, { env: { OUT: out } });
    await second.waitForLines(/Waiting for messages/);
    const deadline = Date.now() + 20_000;
    while (!second.stderr.some((line) => /parked in/.test(line))) {
      assert.ok(Date.now() < deadline, `not parked: ${second.stderr.join("\n")}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const attempts = second.stderr.join("\n").match(/attempt (\d) of 4/g) ?? [];
    assert.deepEqual(attempts, ["attempt 2 of 4", "attempt 3 of 4"], second.stderr.join("\n"));
    assert.match(second.stderr.join("\n"), /after 4 attempts; parked in/);
    second.kill("SIGTERM");
    assert.equal((await second.status()).code, 0);
    const requeued = await runScript("queue.ts", [
      "requeue",
      "--queue",
      queue,
      "--queue-type",
      "quorum",
    ]);
    assert.equal(requeued.code, 0, requeued.stderr);
    await using broker = await openBroker();
    const channel = await broker.connection.createChannel();
    const message = await channel.get(queue, { noAck: true });
    assert.ok(message, "the requeued task is in the task queue");
    // The broker counts this copy's deliveries from 0 (quorum); the old count is gone.
    assert.equal(message.properties.headers?.["x-delivery-count"] ?? 0, 0);
    assert.equal(message.properties.headers?.["task-attempts"], 0);
    await channel.close();
  } finally {
    await cleanup(queue);
    await Deno.remove(out, { recursive: true });
  }
});
