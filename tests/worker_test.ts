import assert from "node:assert/strict";
import {
  openBroker,
  queueCounts,
  runScript,
  startScript,
  startWorker,
  uniqueQueue,
  waitUntil,
} from "./_helpers.ts";

const RECEIVED = /^ \[x\] Received '/;
const DONE = /^ \[x\] Done$/;

Deno.test("a task sent by new_task.ts is done by worker.ts, with the tutorial's lines, and acked", async () => {
  const queue = uniqueQueue("e2e");
  await using broker = await openBroker();
  try {
    await using worker = await startWorker(queue, ["--dot-ms", "20"]);
    const sent = await runScript("new_task.ts", ["--queue", queue, "First message."]);
    assert.equal(sent.code, 0, sent.stderr);
    await worker.waitForLines(DONE);
    assert.deepEqual(worker.stdout, [
      " [*] Waiting for messages. To exit press CTRL+C",
      " [x] Received 'First message.'",
      " [x] Done",
    ]);
    await waitUntil("the ack", async () => {
      const counts = await queueCounts(queue);
      return counts?.ready === 0 && counts.unacked === 0;
    });
    worker.kill("SIGINT");
    assert.equal((await worker.status()).code, 0, worker.transcript());
    assert.equal(await broker.ready(queue), 0, "nothing went back to the queue");
  } finally {
    await broker.deleteQueues(queue);
  }
});

Deno.test("two workers share four tasks round-robin", async () => {
  const queue = uniqueQueue("rr");
  await using broker = await openBroker();
  try {
    await using a = await startWorker(queue, ["--dot-ms", "10", "--prefetch", "10"]);
    await using b = await startWorker(queue, ["--dot-ms", "10", "--prefetch", "10"]);
    for (const body of ["one.", "two.", "three.", "four."]) await broker.publish(queue, body);
    await waitUntil(
      "four tasks done",
      () => a.matching(DONE).length + b.matching(DONE).length === 4,
    );
    assert.deepEqual(a.matching(RECEIVED), [" [x] Received 'one.'", " [x] Received 'three.'"]);
    assert.deepEqual(b.matching(RECEIVED), [" [x] Received 'two.'", " [x] Received 'four.'"]);
  } finally {
    await broker.deleteQueues(queue);
  }
});

Deno.test("prefetch 1 gives light tasks to the idle worker while the other does a heavy one", async () => {
  const queue = uniqueQueue("fair");
  await using broker = await openBroker();
  try {
    await using a = await startWorker(queue, ["--dot-ms", "100"]);
    await using b = await startWorker(queue, ["--dot-ms", "100"]);
    await broker.publish(queue, "heavy" + ".".repeat(30));
    await waitUntil(
      "the heavy task to start",
      () => a.matching(RECEIVED).length + b.matching(RECEIVED).length === 1,
    );
    const [busy, idle] = a.matching(RECEIVED).length === 1 ? [a, b] : [b, a];
    await broker.publish(queue, "light1.", "light2.", "light3.", "light4.");
    await idle.waitForLines(DONE, 4);
    assert.equal(busy.matching(RECEIVED).length, 1, "the busy worker got nothing more");
    assert.equal(busy.matching(DONE).length, 0, "and is still on the heavy task");
  } finally {
    await broker.deleteQueues(queue);
  }
});

Deno.test("a task whose worker is killed with SIGKILL is redelivered to another worker and done", async () => {
  const queue = uniqueQueue("kill");
  await using broker = await openBroker();
  try {
    await using doomed = await startWorker(queue, ["--dot-ms", "200"]);
    await broker.publish(queue, "Survive.........");
    await doomed.waitForLines(RECEIVED);
    await using survivor = await startWorker(queue, ["--dot-ms", "20"]);
    doomed.kill("SIGKILL");
    assert.equal((await doomed.status()).signal, "SIGKILL");
    await survivor.waitForLines(DONE);
    assert.deepEqual(survivor.matching(RECEIVED), [" [x] Received 'Survive.........'"]);
    await waitUntil("the ack", async () => (await queueCounts(queue))?.unacked === 0);
    assert.equal(await broker.ready(queue), 0);
  } finally {
    await broker.deleteQueues(queue);
  }
});

Deno.test("SIGTERM during a task lets it finish and be acked, then the worker exits 0", async () => {
  const queue = uniqueQueue("term");
  await using broker = await openBroker();
  try {
    await using worker = await startWorker(queue, ["--dot-ms", "100"]);
    await broker.publish(queue, "Finish me.....", "Not me");
    await worker.waitForLines(RECEIVED);
    worker.kill("SIGTERM");
    const status = await worker.status();
    assert.equal(status.code, 0, worker.transcript());
    assert.deepEqual(worker.matching(RECEIVED), [" [x] Received 'Finish me.....'"]);
    assert.equal(worker.matching(DONE).length, 1);
    assert.equal(await broker.ready(queue), 1, "the task it had not started is still queued");
  } finally {
    await broker.deleteQueues(queue);
  }
});

Deno.test("a second signal ends a draining worker at once with 130, and the task is redelivered", async () => {
  const queue = uniqueQueue("twice");
  await using broker = await openBroker();
  try {
    await using worker = await startWorker(queue, ["--dot-ms", "1000"]);
    await broker.publish(queue, "Long..........");
    await worker.waitForLines(RECEIVED);
    worker.kill("SIGINT");
    await waitUntil(
      "the consumer to be cancelled",
      async () => (await queueCounts(queue))?.consumers === 0,
    );
    worker.kill("SIGINT");
    assert.equal((await worker.status()).code, 130, worker.transcript());
    await waitUntil("the task back in the queue", async () => (await broker.ready(queue)) === 1);
  } finally {
    await broker.deleteQueues(queue);
  }
});

Deno.test("--max-tasks N: the worker does exactly N tasks, acks them, exits 0 and leaves the rest queued", async () => {
  const queue = uniqueQueue("max");
  await using broker = await openBroker();
  try {
    const channel = await broker.connection.createChannel();
    await channel.assertQueue(queue, { durable: true });
    await channel.close();
    await broker.publish(queue, "1.", "2.", "3.", "4.", "5.", "6.");
    // A prefetch above the limit: the deliveries past it must go back untouched.
    await using worker = startScript("worker.ts", [
      ...["--queue", queue, "--dot-ms", "20", "--prefetch", "5", "--concurrency", "2"],
      ...["--max-tasks", "3"],
    ]);
    assert.equal((await worker.status()).code, 0, worker.transcript());
    assert.equal(worker.matching(RECEIVED).length, 3, worker.transcript());
    assert.equal(worker.matching(DONE).length, 3, worker.transcript());
    assert.deepEqual(await queueCounts(queue), { ready: 3, unacked: 0, consumers: 0 });
  } finally {
    await broker.deleteQueues(queue, `${queue}.dead`);
  }
});

Deno.test("--quiet: tasks are done without a line each, and a failed one still says so", async () => {
  const queue = uniqueQueue("quiet");
  await using broker = await openBroker();
  try {
    await using worker = await startWorker(queue, [
      ...["--quiet", "--exec", '[ "$(cat)" != bad ]', "--max-retries", "0"],
    ]);
    await broker.publish(queue, "good", "bad", "good too");
    await waitUntil("the tasks settled", async () => {
      const counts = await queueCounts(queue);
      return counts?.ready === 0 && counts.unacked === 0 &&
        await broker.ready(`${queue}.dead`) === 1;
    });
    worker.kill("SIGTERM");
    assert.equal((await worker.status()).code, 0, worker.transcript());
    assert.deepEqual(worker.stdout, [" [*] Waiting for messages. To exit press CTRL+C"]);
    assert.equal(worker.stderr.filter((line) => /failed .* parked in/.test(line)).length, 1);
  } finally {
    await broker.deleteQueues(queue, `${queue}.dead`);
  }
});

Deno.test("worker.ts uses a queue that exists with other arguments", async () => {
  const queue = uniqueQueue("foreign");
  await using broker = await openBroker();
  const channel = await broker.connection.createChannel();
  await channel.assertQueue(queue, { durable: true, arguments: { "x-max-priority": 5 } });
  await channel.close();
  try {
    await using worker = await startWorker(queue, ["--dot-ms", "0"]);
    assert.match(worker.stderr.join("\n"), /exists with other arguments; using it as it is/);
    await broker.publish(queue, "works");
    await worker.waitForLines(DONE);
  } finally {
    await broker.deleteQueues(queue);
  }
});

Deno.test("worker.ts exits 2 with usage for bad flag values", async () => {
  for (
    const args of [
      ["--prefetch", "0"],
      ["--prefetch", "many"],
      ["--dot-ms", "-5"],
      ["--max-tasks", "-1"],
      ["--what"],
    ]
  ) {
    const result = await runScript("worker.ts", args);
    assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
    assert.match(result.stderr, /Usage: deno task worker/);
  }
});

Deno.test("worker.ts exits 1 with one line when the broker is unreachable", async () => {
  await using worker = startScript("worker.ts", [], { env: { AMQP_URL: "amqp://127.0.0.1:1" } });
  assert.equal((await worker.status()).code, 1);
  assert.deepEqual(worker.stderr, [`Cannot connect to "amqp://127.0.0.1:1": connection refused`]);
});
