import assert from "node:assert/strict";
import { parseBrokerList } from "../lib/broker/connection.ts";
import { BROKER_URL, openBroker, runScript, startScript, uniqueQueue } from "./_helpers.ts";

Deno.test("parseBrokerList() takes one address or a comma-separated list", () => {
  assert.deepEqual(parseBrokerList("amqp://a, amqp://b:5673/v").map((url) => url.host), [
    "a",
    "b:5673",
  ]);
  assert.throws(() => parseBrokerList(" , "), { name: "TypeError", message: /none given/ });
  assert.throws(() => parseBrokerList("amqp://a,http://b"), TypeError);
});

Deno.test("with a list of brokers the producer and the worker use the first that answers", async () => {
  const queue = uniqueQueue("list");
  await using broker = await openBroker();
  try {
    const list = `amqp://127.0.0.1:1,${BROKER_URL}`;
    const sent = await runScript("new_task.ts", ["--queue", queue, "Listed."], {
      env: { AMQP_URL: list },
    });
    assert.equal(sent.code, 0, sent.stderr);
    await using worker = startScript("worker.ts", [
      "--queue",
      queue,
      "--dot-ms",
      "1",
      "--url",
      "amqp://127.0.0.1:2",
      "--url",
      BROKER_URL,
    ]);
    await worker.waitForLines(/^ \[x\] Done$/);
  } finally {
    await broker.deleteQueues(queue, `${queue}.dead`);
  }
});

Deno.test("when no broker in the list answers, one line names them all, without credentials", async () => {
  const result = await runScript("new_task.ts", ["x"], {
    env: { AMQP_URL: "amqp://u:s3cret@127.0.0.1:1,amqp://u:s3cret@127.0.0.1:2/vh" },
  });
  assert.equal(result.code, 1);
  assert.equal(
    result.stderr,
    'Cannot connect to any of "amqp://127.0.0.1:1", "amqp://127.0.0.1:2/vh": connection refused',
  );
});
