/**
 * A worker whose subscribe keeps failing (here: its dead queue was replaced by one that drops
 * tasks) leaks nothing per attempt, and a stop during the attempts leaves no consumer behind.
 */

import assert from "node:assert/strict";
import { openBroker, queueCounts, rabbitmqctl, startScript, uniqueQueue } from "./_helpers.ts";

/** The channels the broker counts on the connection named for process `pid`. */
async function channelsOf(pid: number): Promise<number | undefined> {
  const rows = JSON.parse(
    await rabbitmqctl(
      "list_connections",
      "client_properties",
      "channels",
      "-q",
      "--formatter",
      "json",
    ),
  ) as Array<{ client_properties: unknown; channels: number }>;
  const row = rows.find((r) => JSON.stringify(r.client_properties).includes(`pid ${pid}"`));
  return row?.channels;
}

Deno.test("failed resubscribes close what they opened, and a stop during them leaves no consumer", async () => {
  const queue = uniqueQueue("leak");
  await using broker = await openBroker();
  try {
    await using worker = startScript("worker.ts", ["--queue", queue, "--dot-ms", "0"]);
    await worker.waitForLines(/Waiting for messages/);
    const channel = await broker.connection.createChannel();
    await channel.deleteQueue(`${queue}.dead`);
    await channel.assertQueue(`${queue}.dead`, {
      durable: true,
      arguments: { "x-message-ttl": 1 },
    });
    // The broker cancels the consumer; every attempt to consume again is refused.
    await channel.deleteQueue(queue);
    await channel.close();
    const deadline = Date.now() + 20_000;
    const refusals = () =>
      worker.stderr.filter((line) => /Refusing queue .*trying again/.test(line));
    while (refusals().length < 5) {
      assert.ok(Date.now() < deadline, worker.stderr.join("\n"));
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const channels = await channelsOf(worker.pid);
    assert.ok(
      channels !== undefined && channels <= 2,
      `${channels} channels after 5 failed attempts`,
    );
    worker.kill("SIGTERM");
    assert.equal((await worker.status()).code, 0, worker.stderr.join("\n"));
    assert.equal((await queueCounts(queue))?.consumers ?? 0, 0, "no consumer left behind");
  } finally {
    await broker.deleteQueues(queue, `${queue}.dead`);
  }
});
