/**
 * `new_task.ts --wait` and the library's sendAndWait: the outcome of a task (done with its
 * result, or parked with its reason) comes back over direct reply-to; a timeout or a producer
 * that goes away costs the outcome, never the task.
 */

import assert from "node:assert/strict";
import { connect, TaskQueue } from "../mod.ts";
import {
  BROKER_URL,
  openBroker,
  runScript,
  startScript,
  startWorker,
  uniqueQueue,
  waitUntil,
} from "./_helpers.ts";

async function cleanup(queue: string, retryDelays: number[] = []): Promise<void> {
  await using broker = await openBroker();
  await broker.deleteQueues(
    queue,
    `${queue}.dead`,
    ...retryDelays.map((delay) => `${queue}.retry.${delay}ms`),
  );
}

Deno.test("--wait prints the outcome of a done task with the --exec command's output, and exits 0", async () => {
  const queue = uniqueQueue("waitdone");
  try {
    await using worker = startScript("worker.ts", [
      "--queue",
      queue,
      "--exec",
      'echo "got $(cat)"',
    ]);
    await worker.waitForLines(/Waiting for messages/);
    const result = await runScript("new_task.ts", ["--queue", queue, "--wait", "Hello"]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stdout,
      /^ \[x\] Sent 'Hello'\n \[x\] Done by .+ in \d+ ms \(1 attempt\): got Hello$/,
    );
    assert.ok(!worker.stdout.some((line) => /got Hello/.test(line)), "sent back, not printed");
    const json = await runScript("new_task.ts", ["--queue", queue, "--wait", "--json", "Again"]);
    assert.equal(json.code, 0, json.stderr);
    const outcome = JSON.parse(json.stdout);
    assert.equal(outcome.status, "done");
    assert.equal(outcome.result, "got Again");
    assert.equal(outcome.attempts, 1);
    assert.equal(typeof outcome.duration_ms, "number");
    worker.kill("SIGTERM");
    assert.equal((await worker.status()).code, 0);
  } finally {
    await cleanup(queue);
  }
});

Deno.test("--wait waits through retries and exits 1 with the reason when the task is parked", async () => {
  const queue = uniqueQueue("waitparked");
  try {
    await using worker = await startWorker(queue, [
      "--exec",
      "exit 4",
      "--max-retries",
      "1",
      "--retry-delay",
      "100",
    ]);
    const result = await runScript("new_task.ts", ["--queue", queue, "--wait", "doomed"]);
    assert.equal(result.code, 1, result.stdout + result.stderr);
    assert.match(result.stdout, / \[!\] Parked by .+ after 2 attempts: exit code 4$/m);
    worker.kill("SIGTERM");
    await worker.status();
  } finally {
    await cleanup(queue, [100]);
  }
});

Deno.test("--wait-timeout passing first exits 3; the task is still done later", async () => {
  const queue = uniqueQueue("waittimeout");
  try {
    const result = await runScript("new_task.ts", [
      "--queue",
      queue,
      "--wait",
      "--wait-timeout",
      "300",
      "later",
    ]);
    assert.equal(result.code, 3, result.stderr);
    assert.match(
      result.stderr,
      /No outcome for task .* within 300 ms; the task was sent and will still run/,
    );
    await using worker = await startWorker(queue, ["--dot-ms", "0", "--max-tasks", "1"]);
    assert.equal((await worker.status()).code, 0);
    assert.equal(worker.matching(/^ \[x\] Done$/).length, 1);
  } finally {
    await cleanup(queue);
  }
});

Deno.test("--stdin --wait prints one outcome per task as they finish, a summary, and exits 1 when any was parked", async () => {
  const queue = uniqueQueue("waitmany");
  try {
    await using worker = await startWorker(queue, [
      "--concurrency",
      "2",
      "--max-retries",
      "0",
      "--exec",
      'read -r line; [ "$line" != bad ] && echo "ok $line"',
    ]);
    const result = await runScript("new_task.ts", ["--queue", queue, "--stdin", "--wait"], {
      stdin: "one\nbad\nthree\n",
    });
    assert.equal(result.code, 1, result.stderr);
    const lines = result.stdout.split("\n");
    assert.equal(lines.filter((line) => /Done \(line [13]\)/.test(line)).length, 2, result.stdout);
    assert.ok(lines.some((line) => /Parked \(line 2\).*exit code 1/.test(line)), result.stdout);
    assert.match(lines.at(-1)!, /^ \[=\] 3 tasks sent in .* s: 2 done, 1 parked$/);
    const good = await runScript("new_task.ts", ["--queue", queue, "--stdin", "--wait"], {
      stdin: "four\nfive\n",
    });
    assert.equal(good.code, 0, good.stderr);
    worker.kill("SIGTERM");
    await worker.status();
  } finally {
    await cleanup(queue);
  }
});

Deno.test("sendAndWait() resolves with a --handler's return value", async () => {
  const queue = uniqueQueue("waithandler");
  const dir = await Deno.makeTempDir();
  const handler = `${dir}/double.ts`;
  await Deno.writeTextFile(
    handler,
    "export default (task: { json(): { n: number } }) => ({ doubled: task.json().n * 2 });\n",
  );
  try {
    await using worker = await startWorker(queue, ["--handler", handler]);
    const connection = await connect(BROKER_URL);
    try {
      const producer = await connection.createProducer(new TaskQueue(queue));
      const outcome = await producer.sendAndWait(JSON.stringify({ n: 21 }), {
        wait: { timeout: 10_000 },
      });
      assert.equal(outcome.status, "done");
      assert.deepEqual(outcome.result, { doubled: 42 });
    } finally {
      await connection.close();
    }
    worker.kill("SIGTERM");
    await worker.status();
  } finally {
    await cleanup(queue);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a producer killed while it waits loses nothing: the task is done", async () => {
  const queue = uniqueQueue("waitkilled");
  try {
    await using producer = startScript("new_task.ts", ["--queue", queue, "--wait", "orphan."]);
    await producer.waitForLines(/\[x\] Sent 'orphan\.'/);
    producer.kill("SIGKILL");
    await producer.status();
    await using worker = await startWorker(queue, ["--dot-ms", "10", "--max-tasks", "1"]);
    assert.equal((await worker.status()).code, 0);
    assert.equal(worker.matching(/^ \[x\] Done$/).length, 1);
    await using broker = await openBroker();
    await waitUntil("the queue empty", async () => await broker.ready(queue) === 0);
  } finally {
    await cleanup(queue);
  }
});
