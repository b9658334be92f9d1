import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { TASK_HEADERS, TaskQueue } from "../mod.ts";
import { checkQueue } from "../lib/amqp.ts";
import {
  openBroker,
  queueCounts,
  runScript,
  type ScriptProcess,
  startScript,
  uniqueQueue,
  waitUntil,
} from "./_helpers.ts";

const MOD_URL = new URL("../mod.ts", import.meta.url).href;

/** A worker event as `--json` prints it. */
type JsonEvent = { event: string; [field: string]: unknown };

/** A temp folder holding handler modules, removed on dispose. */
async function handlerDir(modules: Record<string, string>) {
  const dir = await Deno.makeTempDir({ prefix: "handler_test_" });
  for (const [name, source] of Object.entries(modules)) {
    await Deno.writeTextFile(`${dir}/${name}`, source);
  }
  return {
    dir,
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Starts `worker.ts --handler FILE --json` on `queue` and its policy, and waits until it consumes. */
async function startHandlerWorker(
  queue: TaskQueue,
  file: string,
  args: string[] = [],
): Promise<ScriptProcess> {
  const worker = startScript("worker.ts", [
    ...policyFlags(queue),
    "--handler",
    file,
    "--json",
    ...args,
  ]);
  await worker.waitForLines(/"event":"started"/);
  return worker;
}

/** The `--json` events of `worker` of type `type`, so far. */
function events(worker: ScriptProcess, type: string): JsonEvent[] {
  return worker.stdout.filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as JsonEvent)
    .filter((event) => event.event === type);
}

async function waitForEvents(worker: ScriptProcess, type: string, count = 1) {
  await worker.waitForLines(new RegExp(`^\\{.*"event":"${type}"`), count);
  return events(worker, type);
}

async function emptyAndAcked(queue: string): Promise<boolean> {
  const counts = await queueCounts(queue);
  return counts?.ready === 0 && counts.unacked === 0;
}

function policyFlags(queue: TaskQueue): string[] {
  return [
    ["--queue", queue.name],
    ["--max-retries", `${queue.maxRetries}`],
    ["--retry-delay", `${queue.retryDelay}`],
  ].flat();
}

/** Deletes the task queue, its dead queue and its delay levels. */
async function deleteQueues(queue: TaskQueue): Promise<void> {
  await using broker = await openBroker();
  await broker.deleteTaskQueues(queue.name);
}
Deno.test("worker --handler FILE runs the module's default export for each task and acks it", async () => {
  const queue = new TaskQueue(uniqueQueue("handler_ok"));
  await using modules = await handlerDir({
    "ok.ts": `export default (task) => console.log("handled " + task.text() + " " + task.attempt);`,
  });
  try {
    await using worker = await startHandlerWorker(queue, `${modules.dir}/ok.ts`);
    await using broker = await openBroker();
    await broker.publish(queue.name, "one", "two");
    await waitForEvents(worker, "done", 2);
    assert.deepEqual(worker.matching(/^handled /), ["handled one 1", "handled two 1"]);
    await waitUntil("the acks", () => emptyAndAcked(queue.name));
    worker.kill("SIGTERM");
    assert.equal((await worker.status()).code, 0, worker.transcript());
    assert.equal(await broker.ready(queue.name), 0);
  } finally {
    await deleteQueues(queue);
  }
});

Deno.test("worker --handler: a try that throws is retried, and done on attempt 2", async () => {
  const queue = new TaskQueue(uniqueQueue("handler_retry"), { retryDelay: 100 });
  await using modules = await handlerDir({
    "flaky.ts": `export default (task) => {
      if (task.attempt === 1) throw new Error("first try fails");
    };`,
  });
  try {
    await using worker = await startHandlerWorker(queue, `${modules.dir}/flaky.ts`);
    await using broker = await openBroker();
    await broker.publish(queue.name, "flaky");
    const [done] = await waitForEvents(worker, "done");
    const [retried, ...more] = events(worker, "retried");
    assert.deepEqual(more, []);
    assert.equal(retried?.id, done!.id);
    assert.deepEqual([retried?.attempt, retried?.reason, retried?.delay_ms], [
      1,
      "first try fails",
      100,
    ]);
    assert.equal(done!.attempt, 2);
    await waitUntil("the ack", () => emptyAndAcked(queue.name));
    assert.equal(await broker.ready(queue.deadQueue), 0);
  } finally {
    await deleteQueues(queue);
  }
});

Deno.test("worker --handler: a PermanentError parks the task after one try, whatever retries are left", async () => {
  const queue = new TaskQueue(uniqueQueue("handler_permanent"), { maxRetries: 3, retryDelay: 100 });
  await using modules = await handlerDir({
    "permanent.ts": `import { PermanentError } from ${JSON.stringify(MOD_URL)};
      export default (task) => {
        console.log("tried " + task.attempt);
        throw new PermanentError("bad input");
      };`,
  });
  try {
    await using worker = await startHandlerWorker(queue, `${modules.dir}/permanent.ts`);
    await using broker = await openBroker();
    await broker.publish(queue.name, "hopeless");
    const [parked] = await waitForEvents(worker, "dead_lettered");
    assert.deepEqual([parked?.attempts, parked?.reason, parked?.queue], [
      1,
      "permanent failure: bad input",
      queue.deadQueue,
    ]);
    await waitUntil("the ack", () => emptyAndAcked(queue.name));
    assert.equal(await broker.ready(queue.deadQueue), 1);
    const channel = await broker.connection.createChannel();
    const message = await channel.get(queue.deadQueue, { noAck: true });
    await channel.close();
    assert.ok(message);
    assert.equal(Buffer.from(message.content).toString(), "hopeless");
    assert.equal(message.properties.headers?.[TASK_HEADERS.attempts], 1);
    assert.deepEqual(worker.matching(/^tried /), ["tried 1"]);
    assert.deepEqual(events(worker, "retried"), []);
    // No retry, so the delay levels were never even declared.
    const levels = await Promise.all(
      queue.delayQueues.map((name) => checkQueue(broker.connection, name)),
    );
    assert.deepEqual(levels.filter((level) => level !== null), [], "no delay level was used");
  } finally {
    await deleteQueues(queue);
  }
});

Deno.test("worker --handler: a try that ignores its signal fails at --task-timeout, and the worker takes the next task", async () => {
  const queue = new TaskQueue(uniqueQueue("handler_timeout"), { maxRetries: 0 });
  await using modules = await handlerDir({
    "stuck.ts": `export default (task) => {
      if (task.text() === "stuck") return new Promise(() => {});
      console.log("did " + task.text());
    };`,
  });
  try {
    await using worker = await startHandlerWorker(queue, `${modules.dir}/stuck.ts`, [
      "--task-timeout",
      "500",
    ]);
    await using broker = await openBroker();
    await broker.publish(queue.name, "stuck", "next");
    const [done] = await waitForEvents(worker, "done");
    const [parked] = events(worker, "dead_lettered");
    const [stuck, next] = events(worker, "received");
    assert.equal(parked?.id, stuck?.id);
    assert.equal(done?.id, next?.id);
    assert.equal(parked?.reason, "timeout after 500 ms");
    assert.ok(Number(parked?.duration_ms) >= 500, `${parked?.duration_ms} ms`);
    assert.deepEqual(worker.matching(/^did /), ["did next"]);
    await waitUntil("the acks", () => emptyAndAcked(queue.name));
    assert.equal(await broker.ready(queue.deadQueue), 1);
    worker.kill("SIGTERM");
    assert.equal((await worker.status()).code, 0, worker.transcript());
  } finally {
    await deleteQueues(queue);
  }
});

Deno.test("worker --handler: SIGTERM during a task lets it finish and be acked, then the worker exits 0", async () => {
  const queue = new TaskQueue(uniqueQueue("handler_term"));
  await using modules = await handlerDir({});
  const go = `${modules.dir}/go`;
  await Deno.writeTextFile(
    `${modules.dir}/slow.ts`,
    `export default async () => {
      console.log("started");
      // Waits for the test to say go, after the worker has taken the signal.
      for (;;) {
        try { Deno.statSync(${JSON.stringify(go)}); break; } catch { /* not yet */ }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      console.log("finished");
    };`,
  );
  try {
    await using worker = await startHandlerWorker(queue, `${modules.dir}/slow.ts`);
    await using broker = await openBroker();
    await broker.publish(queue.name, "slow");
    await worker.waitForLines(/^started$/);
    worker.kill("SIGTERM");
    await waitUntil(
      "the consumer cancelled",
      async () => (await queueCounts(queue.name))?.consumers === 0,
    );
    assert.deepEqual(events(worker, "done"), [], "still on the task");
    await Deno.writeTextFile(go, "");
    assert.equal((await worker.status()).code, 0, worker.transcript());
    assert.deepEqual(worker.matching(/^finished$/), ["finished"]);
    assert.equal(events(worker, "done").length, 1);
    assert.ok(await emptyAndAcked(queue.name), "the task was acked");
  } finally {
    await deleteQueues(queue);
  }
});

Deno.test("worker --handler exits 2 with the reason and the usage for a module it cannot load or use, before connecting", async () => {
  const queue = uniqueQueue("handler_bad");
  await using modules = await handlerDir({
    "named.ts": "export function handle() {}",
    "number.ts": "export default 42;",
    "broken.ts": "export default (task) => {",
  });
  for (
    const [file, message] of [
      ["missing.ts", /^Cannot load handler module ".*missing\.ts": Module not found/],
      ["named.ts", /^Cannot use handler module ".*named\.ts": its default export is missing/],
      ["number.ts", /^Cannot use handler module ".*number\.ts": its default export is a number/],
      ["broken.ts", /^Cannot load handler module ".*broken\.ts": SyntaxError: /],
    ] as const
  ) {
    const result = await runScript("worker.ts", [
      "--queue",
      queue,
      "--handler",
      `${modules.dir}/${file}`,
    ]);
    assert.equal(result.code, 2, `${file}: ${result.stderr}`);
    const lines = result.stderr.split("\n");
    assert.equal(lines.length, 2, `${file}: one line of reason, no stack trace: ${result.stderr}`);
    assert.match(lines[0]!, message);
    assert.equal(lines[1], "Usage: deno task worker [OPTIONS] (see --help)");
    assert.equal(result.stdout, "");
  }
  assert.equal(await queueCounts(queue), undefined, "the worker never got to the broker");
});

Deno.test("worker --handler examples/handler.ts does the JSON tasks of examples/producer.ts and the text tasks of new_task.ts", async () => {
  const queue = new TaskQueue(uniqueQueue("handler_example"));
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) =>
      new URL(request.url).pathname === "/page"
        ? new Response("hello")
        : new Response("gone", { status: 404 }),
  );
  const base = `http://127.0.0.1:${server.addr.port}`;
  try {
    await using worker = await startHandlerWorker(queue, "examples/handler.ts");
    const json = await runScript("examples/producer.ts", ["--queue", queue.name, `${base}/page`]);
    assert.equal(json.code, 0, json.stderr);
    const text = await runScript("new_task.ts", ["--queue", queue.name, `${base}/missing`]);
    assert.equal(text.code, 0, text.stderr);
    const [done] = await waitForEvents(worker, "done");
    assert.equal(json.stdout, `Sent ${done?.id} ${base}/page`);
    assert.ok(worker.stdout.includes(`${base}/page: 5 bytes`), worker.transcript());
    const [parked] = await waitForEvents(worker, "dead_lettered");
    assert.deepEqual([parked?.attempts, parked?.reason], [
      1,
      `permanent failure: HTTP 404 from ${base}/missing`,
    ]);
    await waitUntil("the acks", () => emptyAndAcked(queue.name));
  } finally {
    await deleteQueues(queue);
  }
});
