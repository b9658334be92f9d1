/**
 * Queues another program left in an odd state: a task queue or dead queue that could drop what
 * it holds is refused, with one line and exit 1, unless the user opts in.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { delayLevelNames } from "../lib/topology/delays.ts";
import { deleteWithDelays, openBroker, runScript, startScript, uniqueQueue } from "./_helpers.ts";

/** Declares `queue` as another program would, with `options`. */
async function predeclare(queue: string, options: Record<string, unknown>): Promise<void> {
  await using broker = await openBroker();
  const channel = await broker.connection.createChannel();
  await channel.assertQueue(queue, options);
  await channel.close();
}

/** Deletes queues whether or not they exist. */
async function remove(...queues: string[]): Promise<void> {
  await using broker = await openBroker();
  const channel = await broker.connection.createChannel();
  await deleteWithDelays(channel, queues);
  await channel.close();
}

const LOSSY: [string, Record<string, unknown>, RegExp][] = [
  ["ttl", { durable: true, arguments: { "x-message-ttl": 1 } }, /its tasks expire/],
  ["length", { durable: true, arguments: { "x-max-length": 1 } }, /drops its oldest tasks/],
  ["autodelete", { durable: true, autoDelete: true }, /auto-delete/],
  ["transient", { durable: false }, /not durable/],
  [
    "quorumttl",
    { durable: true, arguments: { "x-queue-type": "quorum", "x-message-ttl": 1000 } },
    /its tasks expire/,
  ],
];

Deno.test("new_task.ts refuses a task queue that can drop tasks, sends nothing, and sends with --allow-lossy-queue", async () => {
  for (const [label, options, why] of LOSSY) {
    const queue = uniqueQueue(`lossy_${label}`);
    try {
      await predeclare(queue, options);
      const refused = await runScript("new_task.ts", ["--queue", queue, "Task."]);
      assert.equal(refused.code, 1, `${label}: ${refused.stderr}`);
      assert.equal(refused.stderr.trim().split("\n").length, 1, refused.stderr);
      assert.match(refused.stderr, new RegExp(`^Refusing queue "${queue}": `));
      assert.match(refused.stderr, why);
      assert.equal(refused.stdout, "", "nothing reported sent");
      if (label === "ttl" || label === "autodelete") continue; // what it holds would not stay
      await using broker = await openBroker();
      assert.equal(await broker.ready(queue), 0, "nothing sent");
      const allowed = await runScript("new_task.ts", [
        "--queue",
        queue,
        "--allow-lossy-queue",
        "Task.",
      ]);
      assert.equal(allowed.code, 0, allowed.stderr);
      assert.match(allowed.stderr, /can lose tasks/);
      assert.equal(await broker.ready(queue), 1);
    } finally {
      await remove(queue);
    }
  }
});

Deno.test("worker.ts refuses a dead queue with a TTL: exit 1 before taking a task, the task stays queued", async () => {
  const queue = uniqueQueue("deadttl");
  try {
    await predeclare(queue, { durable: true });
    await predeclare(`${queue}.dead`, { durable: true, arguments: { "x-message-ttl": 1 } });
    await using broker = await openBroker();
    await broker.publish(queue, "fails");
    await using worker = startScript("worker.ts", [
      "--queue",
      queue,
      "--exec",
      "exit 7",
      "--max-retries",
      "0",
    ]);
    const status = await worker.status();
    assert.equal(status.code, 1, worker.stderr.join("\n"));
    assert.match(
      worker.stderr.join("\n"),
      new RegExp(`Refusing queue "${queue}\\.dead": its tasks expire`),
    );
    assert.ok(!worker.stdout.some((line) => /parked/.test(line)));
    assert.equal(await broker.ready(queue), 1, "the task was not taken");
  } finally {
    await remove(queue, `${queue}.dead`);
  }
});

Deno.test("a queue with a length limit that rejects publishes is not lossy: used with a warning", async () => {
  const queue = uniqueQueue("reject");
  try {
    await predeclare(queue, {
      durable: true,
      arguments: { "x-max-length": 10, "x-overflow": "reject-publish" },
    });
    const result = await runScript("new_task.ts", ["--queue", queue, "Task."]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stderr,
      /exists with other arguments; using it as it is \(x-max-length 10, x-overflow reject-publish\)/,
    );
  } finally {
    await remove(queue);
  }
});

/**
 * Publishes a task whose headers nearly fill the 64 KB that amqplib can encode: the worker's own
 * headers on a move push the copy past it, so it can be moved nowhere (as a task with a 100 KB
 * header from another client, or one past the broker's current message size limit).
 */
async function publishUnmovable(queue: string, id: string): Promise<void> {
  await using broker = await openBroker();
  const channel = await broker.connection.createConfirmChannel();
  channel.sendToQueue(queue, Buffer.from("big"), {
    persistent: true,
    messageId: id,
    headers: { note: "h".repeat(65_400) },
  });
  await channel.waitForConfirms();
  await channel.close();
}

Deno.test("a task that can be moved nowhere is held unacked out of the way: the others flow, and a stop gives it back", async () => {
  const queue = uniqueQueue("held");
  try {
    await predeclare(queue, { durable: true });
    await publishUnmovable(queue, "big");
    await using broker = await openBroker();
    await broker.publish(queue, "a", "b", "c");
    await using worker = startScript("worker.ts", [
      "--queue",
      queue,
      "--retry-delay",
      "200",
      "--exec",
      '[ "$TASK_ID" != big ]',
    ]);
    await worker.waitForLines(/^ \[x\] Done$/, 3);
    const deadline = Date.now() + 10_000;
    while (!worker.stderr.some((line) => /Task big failed .*held unacked/.test(line))) {
      assert.ok(Date.now() < deadline, worker.stderr.join("\n"));
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(await broker.ready(`${queue}.dead`), 0);
    worker.kill("SIGTERM");
    assert.equal((await worker.status()).code, 0, worker.stderr.join("\n"));
    assert.equal(await broker.ready(queue), 1, "the held task went back to the queue");
  } finally {
    await remove(queue, `${queue}.dead`);
  }
});

Deno.test("a delay level another program declared without TTL or dead-lettering: the retry is refused there, the try counts and the task is parked", async () => {
  const queue = uniqueQueue("badretry");
  // 100 ms is 1100100 in binary: a retry starts in level 6.
  const level = `${queue}.delay.L06`;
  try {
    await predeclare(queue, { durable: true });
    await predeclare(level, { durable: true });
    await using broker = await openBroker();
    await broker.publish(queue, "fails");
    await using worker = startScript("worker.ts", [
      "--queue",
      queue,
      "--retry-delay",
      "100",
      "--max-tasks",
      "1",
      "--exec",
      "exit 3",
    ]);
    assert.equal((await worker.status()).code, 0, worker.stderr.join("\n"));
    const log = worker.stderr.join("\n");
    assert.match(
      log,
      /could not be moved to .*\.delay\.L06 \(Refusing queue ".*\.delay\.L06": its tasks wait forever .* after 1 attempts; parked in/,
    );
    assert.equal(await broker.ready(`${queue}.dead`), 1);
    assert.equal(await broker.ready(queue), 0, "not run again");
    assert.equal(await broker.ready(level), 0, "nothing left in the bad level");
  } finally {
    await remove(queue, `${queue}.dead`);
  }
});

Deno.test("a queue name whose dead or retry queue would pass 255 bytes is refused at start with exit 2 and the longest that works", async () => {
  const queue = `q${"x".repeat(245)}`; // fits alone; "<q>.delay.L31" does not
  for (const script of ["worker.ts", "new_task.ts"]) {
    const result = await runScript(script, [
      "--queue",
      queue,
      ...(script === "new_task.ts" ? ["x"] : []),
    ]);
    assert.equal(result.code, 2, `${script}: ${result.stderr}`);
    assert.match(result.stderr, /would be longer than 255 bytes; .* at most \d+ bytes/);
  }
  await using broker = await openBroker();
  const channel = await broker.connection.createChannel();
  channel.on("error", () => {});
  await assert.rejects(channel.checkQueue(queue), "nothing was declared");
});

Deno.test("moves of tasks without a message id are told apart: one returned move does not fail another", async () => {
  const queue = uniqueQueue("noid");
  try {
    await using worker = startScript("worker.ts", [
      "--queue",
      queue,
      "--concurrency",
      "2",
      "--max-retries",
      "1",
      "--retry-delay",
      "60000",
      "--exec",
      "sleep 0.3; exit 1",
    ]);
    await worker.waitForLines(/Waiting for messages/);
    // Parking now finds no dead queue: that move comes back unroutable.
    await remove(`${queue}.dead`);
    await using broker = await openBroker();
    const channel = await broker.connection.createConfirmChannel();
    // Neither has a message id, as from the tutorial's Python producer. The second is on its
    // last try (as this project records tries), so it is parked while the first is retried.
    channel.sendToQueue(queue, Buffer.from("first"), { persistent: true });
    channel.sendToQueue(queue, Buffer.from("last try"), {
      persistent: true,
      headers: { "task-attempts": 1, "task-queue": queue },
    });
    await channel.waitForConfirms();
    await channel.close();
    const deadline = Date.now() + 15_000;
    const log = () => worker.stderr.join("\n");
    while (!/retrying in 60000 ms/.test(log()) || !/held unacked/.test(log())) {
      assert.ok(Date.now() < deadline, log());
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    let waiting = 0;
    for (const level of delayLevelNames(queue)) waiting += await broker.ready(level).catch(() => 0);
    assert.equal(waiting, 1, "the first task waits for its retry");
    worker.kill("SIGTERM");
    assert.equal((await worker.status()).code, 0, log());
    assert.equal(await broker.ready(queue), 1, "the held one went back to the queue");
  } finally {
    await remove(queue, `${queue}.dead`);
  }
});
