import assert from "node:assert/strict";
import { TASKS } from "../demo.ts";
import {
  BROKER_URL,
  openBroker,
  queueCounts,
  runScript,
  startWorker,
  uniqueQueue,
} from "./_helpers.ts";

/** `worker 1 did 3 tasks: 'a.', 'b..'` -> ["worker 1", ["a.", "b.."]]. */
function summaries(stdout: string): Map<string, string[]> {
  const found = new Map<string, string[]>();
  for (const match of stdout.matchAll(/^ {2}(worker \d) did (?:no tasks|\d+ tasks?: (.*))$/gm)) {
    const tasks = match[2] === undefined
      ? []
      : [...match[2].matchAll(/'([^']*)'/g)].map((m) => m[1]!);
    found.set(match[1]!, tasks);
  }
  return found;
}

/** The tasks a worker's prefixed output says it received, in order. */
function received(stdout: string, worker: string): string[] {
  const pattern = new RegExp(`^\\[${worker}\\] \\[x\\] Received '(.*)'$`, "gm");
  return [...stdout.matchAll(pattern)].map((match) => match[1]!);
}

Deno.test("demo.ts has two workers do the tutorial's five tasks and ends with the queue empty", async () => {
  const queue = uniqueQueue("demo");
  await using broker = await openBroker();
  try {
    const result = await runScript("demo.ts", ["--queue", queue, "--dot-ms", "20"]);
    const transcript = `\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`;
    assert.equal(result.code, 0, transcript);

    const sent = [...result.stdout.matchAll(/^\[new_task\] \[x\] Sent '(.*)'$/gm)].map((m) => m[1]);
    assert.deepEqual(sent, TASKS, "each task sent by its own new_task.ts, in order");

    const did = summaries(result.stdout);
    assert.deepEqual([...did.keys()], ["worker 1", "worker 2"], transcript);
    for (const [worker, tasks] of did) {
      assert.ok(tasks.length >= 1, `${worker} did at least one task: ${transcript}`);
      assert.deepEqual(
        tasks,
        received(result.stdout, worker),
        `${worker}'s summary matches its lines`,
      );
    }
    assert.deepEqual([...did.values()].flat().sort(), [...TASKS].sort(), "all five, each once");

    assert.equal(result.stdout.trimEnd().split("\n").at(-1), `Queue "${queue}": 0 ready`);
    assert.equal(await broker.ready(queue), 0);
    assert.deepEqual(await queueCounts(queue), { ready: 0, unacked: 0, consumers: 0 });
    const password = new URL(BROKER_URL).password;
    if (password !== "") {
      assert.ok(!`${result.stdout}${result.stderr}`.includes(password), "no password printed");
    }
  } finally {
    await broker.deleteQueues(queue);
  }
});

Deno.test("demo.ts exits 2 with usage for a --dot-ms that is not a number", async () => {
  const result = await runScript("demo.ts", ["--dot-ms", "nope"]);
  assert.equal(result.code, 2, result.stderr);
  assert.match(result.stderr, /Invalid value "nope" for --dot-ms/);
  assert.match(result.stderr, /Usage: deno task demo/);
  assert.equal(result.stdout, "");
});

Deno.test("demo.ts exits 1 with one line, no password, when a broker it would not start does not answer", async () => {
  const result = await runScript("demo.ts", [], {
    env: { AMQP_URL: "amqp://someone:s3cret@127.0.0.1:1" },
  });
  assert.equal(result.code, 1, result.stderr);
  assert.deepEqual(result.stderr.split("\n"), [
    `Cannot connect to "amqp://127.0.0.1:1": connection refused; ` +
    `the demo starts a broker only at amqp://localhost:5672`,
  ]);
  assert.ok(!result.stdout.includes("s3cret"));
});

Deno.test("demo.ts refuses a queue that workers elsewhere consume, before sending anything", async () => {
  const queue = uniqueQueue("demo_busy");
  await using broker = await openBroker();
  try {
    await using _other = await startWorker(queue, ["--dot-ms", "0"]);
    const result = await runScript("demo.ts", ["--queue", queue, "--dot-ms", "0"]);
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, /already has 1 consumer\(s\), workers running elsewhere/);
    assert.doesNotMatch(result.stdout, /Sent/);
    assert.equal(await broker.ready(queue), 0);
  } finally {
    await broker.deleteQueues(queue);
  }
});
