import assert from "node:assert/strict";
import { connect, type Task, TaskQueue, type WorkerState } from "../mod.ts";
import {
  BROKER_URL,
  DEADLINE_MS,
  openBroker,
  queueCounts,
  runScript,
  startScript,
  uniqueQueue,
  waitUntil,
} from "./_helpers.ts";

/** `promise`, or a failure naming `what` after the test deadline. */
async function within<T>(what: string, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`No ${what} within ${DEADLINE_MS} ms`)), DEADLINE_MS);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

async function emptyAndAcked(queue: string): Promise<boolean> {
  const counts = await queueCounts(queue);
  return counts?.ready === 0 && counts.unacked === 0;
}

Deno.test("a Worker does the JSON tasks of a Producer, and stop() lets the task in hand finish and be acked", async () => {
  const queue = new TaskQueue(uniqueQueue("library"));
  const connection = await connect(BROKER_URL);
  try {
    const producer = await connection.createProducer(queue);
    const seen: Task[] = [];
    const inHand = Promise.withResolvers<void>();
    const release = Promise.withResolvers<void>();
    const worker = connection.createWorker(queue, async (task) => {
      seen.push(task);
      if (task.json<{ n: number }>().n === 4) {
        inHand.resolve();
        await release.promise;
      }
    });
    const states: WorkerState[] = [worker.state];
    const done: string[] = [];
    worker.on("state", (event) => states.push(event.state));
    worker.on("done", (event) => done.push(event.id));
    await within("consuming", worker.ready);
    assert.equal(worker.state, "consuming");

    const ids = [
      await producer.sendJson({ n: 1 }),
      await producer.sendJson({ n: 2 }),
      await producer.sendJson({ n: 3, text: "zürich ✓" }),
    ];
    await waitUntil("three tasks done", () => done.length === 3);
    assert.deepEqual(done, ids);
    assert.deepEqual(seen.map((task) => task.json()), [{ n: 1 }, { n: 2 }, {
      n: 3,
      text: "zürich ✓",
    }]);
    for (const task of seen) {
      assert.equal(task.contentType, "application/json");
      assert.equal(Object.getPrototypeOf(task.body), Uint8Array.prototype, "a plain Uint8Array");
      assert.deepEqual([task.attempt, task.redelivered], [1, false]);
    }
    assert.equal(seen[2]!.text(), '{"n":3,"text":"zürich ✓"}');

    const last = await producer.sendJson({ n: 4 });
    await within("the fourth task in hand", inHand.promise);
    let stopped = false;
    const stopping = worker.stop().then(() => stopped = true);
    await waitUntil("the worker stopping", () => worker.state === "stopping");
    await waitUntil(
      "the consumer cancelled",
      async () => (await queueCounts(queue.name))?.consumers === 0,
    );
    assert.equal(stopped, false, "stop() waits for the task in hand");
    assert.equal(worker.running, 1);
    release.resolve();
    await within("the worker stopped", stopping);
    assert.equal(worker.state, "stopped");
    assert.deepEqual(states, ["connecting", "consuming", "stopping", "stopped"]);
    assert.deepEqual(done, [...ids, last]);
    assert.ok(await emptyAndAcked(queue.name), "the task in hand was acked, nothing is left");
  } finally {
    await connection.close();
    await using broker = await openBroker();
    await broker.deleteQueues(queue.name, queue.deadQueue);
  }
});

Deno.test("examples/producer.ts sends JSON tasks that examples/worker.ts does, parking a 404 at once", async () => {
  const queue = uniqueQueue("examples");
  const hits: string[] = [];
  await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const path = new URL(request.url).pathname;
    hits.push(path);
    return path === "/page" ? new Response("<p>hello</p>") : new Response("gone", { status: 404 });
  });
  const base = `http://127.0.0.1:${server.addr.port}`;
  try {
    await using worker = startScript("examples/worker.ts", ["--queue", queue]);
    await worker.waitForLines(/^Waiting for tasks on /);
    const sent = await runScript("examples/producer.ts", [
      "--queue",
      queue,
      `${base}/page`,
      `${base}/missing`,
    ]);
    assert.equal(sent.code, 0, sent.stderr);
    const [page, missing] = sent.stdout.split("\n").map((line) => line.split(" ")[1]!);
    assert.deepEqual(sent.stdout.split("\n"), [
      `Sent ${page} ${base}/page`,
      `Sent ${missing} ${base}/missing`,
    ]);
    await worker.waitForLines(new RegExp(`^Done ${page} in \\d+ ms$`));
    await waitUntil("the 404 parked", () => worker.stderr.some((l) => l.startsWith("Parked")));
    assert.ok(worker.stdout.includes(`${base}/page: 12 bytes`), worker.transcript());
    assert.deepEqual(worker.stderr, [
      `Parked ${missing}: permanent failure: HTTP 404 from ${base}/missing`,
    ]);
    assert.deepEqual(hits.sort(), ["/missing", "/page"], "each URL fetched once");
    worker.kill("SIGTERM");
    assert.equal((await worker.status()).code, 0, worker.transcript());
    assert.ok(await emptyAndAcked(queue));
    assert.equal((await queueCounts(`${queue}.dead`))?.ready, 1);
  } finally {
    await using broker = await openBroker();
    await broker.deleteQueues(queue, `${queue}.dead`);
  }
});

Deno.test("examples/producer.ts and examples/worker.ts exit 2 with usage for bad arguments", async () => {
  for (
    const [script, args] of [
      ["examples/producer.ts", []],
      ["examples/producer.ts", ["--what", "http://x"]],
      ["examples/worker.ts", ["--what"]],
      ["examples/worker.ts", ["extra"]],
    ] as const
  ) {
    const result = await runScript(script, [...args]);
    assert.equal(result.code, 2, `${script} ${args.join(" ")}: ${result.stderr}`);
    assert.match(result.stderr, /\nUsage: (producer|worker)\.ts /);
  }
});

Deno.test("examples/producer.ts and examples/worker.ts exit 1 with one line when the broker is unreachable", async () => {
  const runs: Array<[string, string[]]> = [
    ["examples/producer.ts", ["http://x"]],
    ["examples/worker.ts", []],
  ];
  for (const [script, args] of runs) {
    const result = await runScript(script, args, { env: { AMQP_URL: "amqp://127.0.0.1:1" } });
    assert.equal(result.code, 1, `${script}: ${result.stderr}`);
    assert.equal(result.stderr, `Cannot connect to "amqp://127.0.0.1:1": connection refused`);
  }
});
