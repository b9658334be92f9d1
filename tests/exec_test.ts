import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { setTimeout as sleep } from "node:timers/promises";
import { TASK_HEADERS } from "../lib/topology/task_headers.ts";
import {
  openBroker,
  queueCounts,
  runScript,
  type ScriptProcess,
  startScript,
  startWorker,
  uniqueQueue,
  waitUntil,
} from "./_helpers.ts";

/** A worker with --exec and OUT pointing at a scratch folder its command writes to. */
async function startExecWorker(queue: string, out: string, command: string, args: string[] = []) {
  const worker = startScript("worker.ts", ["--queue", queue, "--exec", command, ...args], {
    env: { OUT: out },
  });
  await worker.waitForLines(/Waiting for messages/);
  return worker;
}

interface Parked {
  body: string;
  headers: Record<string, unknown>;
}

/** Takes every task parked in `<queue>.dead`. */
async function takeParked(queue: string): Promise<Parked[]> {
  await using broker = await openBroker();
  const channel = await broker.connection.createChannel();
  const parked: Parked[] = [];
  for (let message = await channel.get(`${queue}.dead`, { noAck: true }); message;) {
    parked.push({ body: message.content.toString(), headers: message.properties.headers ?? {} });
    message = await channel.get(`${queue}.dead`, { noAck: true });
  }
  await channel.close();
  return parked;
}

/** Deletes the task queue with its dead queue and delay levels, and the output directory. */
async function cleanup(queue: string, out: string): Promise<void> {
  await using broker = await openBroker();
  await broker.deleteTaskQueues(queue);
  await Deno.remove(out, { recursive: true });
}

Deno.test("worker --exec runs the command with the body on stdin, byte for byte, and the task's environment", async () => {
  const queue = uniqueQueue("exec");
  const out = await Deno.makeTempDir();
  try {
    await using worker = await startExecWorker(
      queue,
      out,
      'cat > "$OUT/body"; echo "$TASK_ID $TASK_ATTEMPT $TASK_REDELIVERED" > "$OUT/env"; echo said hello',
    );
    const body = new Uint8Array(256).map((_, i) => i);
    await using broker = await openBroker();
    await broker.publish(queue, body, "; rm -rf / #$(whoami)");
    await worker.waitForLines(/^ \[x\] Done$/, 2);
    assert.deepEqual(
      await Deno.readFile(`${out}/body`),
      new TextEncoder().encode("; rm -rf / #$(whoami)"),
    );
    const [id, attempt, redelivered] = (await Deno.readTextFile(`${out}/env`)).trim().split(" ");
    assert.match(id!, /^[0-9a-f-]{36}$/);
    assert.deepEqual([attempt, redelivered], ["1", "false"]);
    assert.ok(worker.stdout.includes(`[${id}] said hello`), worker.transcript());
    assert.ok(
      worker.stdout.includes(" [x] Received '<256 bytes>'"),
      "binary bodies are not printed",
    );
    await waitUntil("the acks", async () => (await queueCounts(queue))?.unacked === 0);
    assert.equal(await broker.ready(queue), 0);
  } finally {
    await cleanup(queue, out);
  }
});

Deno.test("worker --exec passes binary stdin through intact", async () => {
  const queue = uniqueQueue("binary");
  const out = await Deno.makeTempDir();
  try {
    await using worker = await startExecWorker(queue, out, 'cat > "$OUT/$TASK_ID"');
    const body = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7) % 256));
    await using broker = await openBroker();
    await broker.publish(queue, body);
    await worker.waitForLines(/^ \[x\] Done$/);
    const [file] = [...Deno.readDirSync(out)];
    assert.deepEqual(Buffer.from(await Deno.readFile(`${out}/${file!.name}`)), body);
  } finally {
    await cleanup(queue, out);
  }
});

Deno.test("a task that always fails is tried max-retries + 1 times with doubling delays, then parked with its reason", async () => {
  const queue = uniqueQueue("retry");
  const out = await Deno.makeTempDir();
  try {
    await using worker = await startExecWorker(
      queue,
      out,
      'echo "$TASK_ATTEMPT $(date +%s%3N)" >> "$OUT/log"; exit 3',
      ["--max-retries", "2", "--retry-delay", "300"],
    );
    await using broker = await openBroker();
    await broker.publish(queue, "Doomed.");
    await waitUntil("the task parked", () => worker.stderr.some((line) => /parked in/.test(line)));
    const tries = (await Deno.readTextFile(`${out}/log`)).trim().split("\n").map((line) =>
      line.split(" ").map(Number)
    );
    assert.deepEqual(tries.map(([attempt]) => attempt), [1, 2, 3], "exactly max-retries + 1 tries");
    const gaps = tries.slice(1).map(([, at], i) => at! - tries[i]![1]!);
    assert.ok(gaps[0]! >= 300 && gaps[1]! >= 600, `delays of 300 then 600 ms, observed ${gaps}`);
    const parked = await takeParked(queue);
    assert.equal(parked.length, 1);
    assert.equal(parked[0]!.body, "Doomed.");
    assert.equal(parked[0]!.headers[TASK_HEADERS.reason], "exit code 3");
    assert.equal(parked[0]!.headers[TASK_HEADERS.attempts], 3);
    assert.equal(parked[0]!.headers[TASK_HEADERS.queue], queue);
    assert.ok(typeof parked[0]!.headers[TASK_HEADERS.worker] === "string");
    assert.deepEqual(await queueCounts(queue), { ready: 0, unacked: 0, consumers: 1 });
    assert.match(
      worker.stderr.join("\n"),
      /failed \(exit code 3\), attempt 1 of 3; retrying in 300 ms/,
    );
  } finally {
    await cleanup(queue, out);
  }
});

Deno.test("a retried, then parked task keeps its properties, but not a per-message TTL", async () => {
  const queue = uniqueQueue("props");
  const out = await Deno.makeTempDir();
  try {
    await using worker = await startExecWorker(queue, out, "exit 1", [
      ...["--max-retries", "1", "--retry-delay", "50"],
    ]);
    await using broker = await openBroker();
    const channel = await broker.connection.createConfirmChannel();
    channel.sendToQueue(queue, Buffer.from("{}"), {
      persistent: true,
      messageId: "task-1",
      correlationId: "corr-1",
      replyTo: "replies",
      type: "resize",
      appId: "shop",
      priority: 3,
      contentType: "application/json",
      expiration: "600000",
    });
    await channel.waitForConfirms();
    await channel.close();
    await waitUntil("the task parked", () => worker.stderr.some((line) => /parked in/.test(line)));
    const reader = await broker.connection.createChannel();
    const parked = await reader.get(`${queue}.dead`, { noAck: true });
    await reader.close();
    assert.ok(parked, "a parked task");
    const { properties } = parked;
    assert.deepEqual(
      [properties.messageId, properties.correlationId, properties.replyTo, properties.type],
      ["task-1", "corr-1", "replies", "resize"],
    );
    assert.deepEqual([properties.appId, properties.priority], ["shop", 3]);
    assert.equal(properties.contentType, "application/json");
    assert.equal(properties.expiration, undefined, "a parked task does not expire");
    assert.equal(properties.headers?.[TASK_HEADERS.attempts], 2);
  } finally {
    await cleanup(queue, out);
  }
});

Deno.test("--task-timeout stops a hanging command and its children, and the task is parked with reason timeout", async () => {
  const queue = uniqueQueue("hang");
  const out = await Deno.makeTempDir();
  const marker = `${37 + Math.random()}`.slice(0, 9);
  try {
    await using worker = await startExecWorker(queue, out, `T=${marker}; sleep $T; echo never`, [
      "--task-timeout",
      "300",
      "--max-retries",
      "0",
    ]);
    await using broker = await openBroker();
    await broker.publish(queue, "Hangs.");
    await waitUntil(
      "the task parked",
      () => worker.stderr.some((line) => /parked in/.test(line)),
      5_000,
    );
    const parked = await takeParked(queue);
    assert.equal(parked[0]!.headers[TASK_HEADERS.reason], "timeout after 300 ms");
    const { stdout } = await new Deno.Command("pgrep", { args: ["-f", `^sleep ${marker}`] })
      .output();
    assert.equal(new TextDecoder().decode(stdout), "", "the command's own children are gone too");
  } finally {
    await cleanup(queue, out);
  }
});

Deno.test("--concurrency N runs N tasks at once", async () => {
  const queue = uniqueQueue("concurrent");
  const out = await Deno.makeTempDir();
  try {
    // Each task waits until three tasks have started: it can only succeed if all three run at once.
    await using worker = await startExecWorker(
      queue,
      out,
      'touch "$OUT/$TASK_ID"; for i in $(seq 100); do [ "$(ls "$OUT" | wc -l)" -ge 3 ] && exit 0; sleep 0.05; done; exit 1',
      ["--concurrency", "3", "--max-retries", "0"],
    );
    await using broker = await openBroker();
    await broker.publish(queue, "a", "b", "c");
    await worker.waitForLines(/^ \[x\] Done$/, 3);
    assert.equal(
      worker.stderr.filter((line) => /parked/.test(line)).length,
      0,
      worker.transcript(),
    );
  } finally {
    await cleanup(queue, out);
  }
});

Deno.test("a mixed batch on two workers: every good task done exactly once, every bad task parked", async () => {
  const queue = uniqueQueue("mixed");
  const out = await Deno.makeTempDir();
  const workers: ScriptProcess[] = [];
  try {
    const command = 'body=$(cat); case "$body" in bad*) exit 1;; esac; echo "$body" >> "$OUT/done"';
    for (let i = 0; i < 2; i++) {
      workers.push(
        await startExecWorker(queue, out, command, ["--max-retries", "1", "--retry-delay", "100"]),
      );
    }
    const good = Array.from({ length: 30 }, (_, i) => `good-${i}`);
    const bad = Array.from({ length: 10 }, (_, i) => `bad-${i}`);
    await using broker = await openBroker();
    await broker.publish(queue, ...good.flatMap((g, i) => i < bad.length ? [g, bad[i]!] : [g]));
    const parked: Parked[] = [];
    await waitUntil("all bad tasks parked", async () => {
      parked.push(...await takeParked(queue));
      return parked.length >= bad.length;
    });
    await waitUntil("all good tasks done", async () => {
      const done = await Deno.readTextFile(`${out}/done`).catch(() => "");
      return done.trim().split("\n").length >= good.length;
    });
    const done = (await Deno.readTextFile(`${out}/done`)).trim().split("\n");
    assert.deepEqual(done.toSorted(), good.toSorted(), "each good task exactly once");
    assert.deepEqual(
      parked.map((p) => p.body).toSorted(),
      bad.toSorted(),
      "each bad task parked once",
    );
    await waitUntil("the queue drained", async () => {
      const counts = await queueCounts(queue);
      return counts?.ready === 0 && counts.unacked === 0;
    });
  } finally {
    for (const worker of workers) await worker[Symbol.asyncDispose]();
    await cleanup(queue, out);
  }
});

Deno.test("SIGKILL of workers while they retry and park tasks loses none: each ends up parked, at most duplicated", async () => {
  const queue = uniqueQueue("killretry");
  const out = await Deno.makeTempDir();
  const everyWorker: ScriptProcess[] = [];
  const live: ScriptProcess[] = [];
  const spawn = async () => {
    const worker = await startExecWorker(queue, out, "sleep 0.02; exit 1", [
      "--max-retries",
      "1",
      "--retry-delay",
      "50",
      "--concurrency",
      "4",
    ]);
    everyWorker.push(worker);
    live.push(worker);
  };
  try {
    for (let i = 0; i < 2; i++) await spawn();
    const bodies = Array.from({ length: 60 }, (_, i) => `fails-${i}`);
    await using broker = await openBroker();
    await broker.publish(queue, ...bodies);
    for (let kill = 0; kill < 5; kill++) {
      await sleep(40 + Math.random() * 80);
      const victim = live.splice(Math.floor(Math.random() * live.length), 1)[0]!;
      victim.kill("SIGKILL");
      await victim.status();
      await spawn();
    }
    const parked: Parked[] = [];
    await waitUntil("every task parked", async () => {
      parked.push(...await takeParked(queue));
      return bodies.every((body) => parked.some((p) => p.body === body));
    }, 30_000);
    const duplicated = parked.length - new Set(parked.map((p) => p.body)).size;
    console.log(`kill during retries: lost 0 / duplicated ${duplicated} / total ${bodies.length}`);
    await waitUntil("the queue drained", async () => {
      const counts = await queueCounts(queue);
      return counts?.ready === 0 && counts.unacked === 0;
    });
  } finally {
    for (const worker of everyWorker) await worker[Symbol.asyncDispose]();
    await cleanup(queue, out);
  }
});

Deno.test("worker warns when --task-timeout outlives the broker's ack timeout", async () => {
  const queue = uniqueQueue("longtimeout");
  try {
    await using worker = await startWorker(queue, ["--task-timeout", "3600000"]);
    assert.match(
      worker.stderr.join("\n"),
      /^Warning: --task-timeout 3600000 lets a task run past RabbitMQ's default consumer ack timeout/,
    );
  } finally {
    await using broker = await openBroker();
    await broker.deleteQueues(queue, `${queue}.dead`);
  }
});

Deno.test("worker warns when --max-retries on a quorum queue outlasts RabbitMQ 4's delivery-limit", async () => {
  const queue = uniqueQueue("manyretries");
  const warning =
    /^Warning: --max-retries \d+ on a quorum queue: from RabbitMQ 4\.0 the broker drops/m;
  try {
    for (const [retries, warned] of [["19", false], ["20", true]] as const) {
      await using worker = await startWorker(queue, [
        "--queue-type",
        "quorum",
        "--max-retries",
        retries,
      ]);
      assert.equal(warning.test(worker.stderr.join("\n")), warned, worker.transcript());
    }
  } finally {
    await using broker = await openBroker();
    await broker.deleteQueues(queue, `${queue}.dead`);
  }
});

Deno.test("worker rejects bad failure-handling flags with exit 2", async () => {
  for (
    const args of [["--max-retries", "-1"], ["--retry-delay", "0"], ["--concurrency", "0"], [
      "--exec",
      "",
    ], ["--concurrency", "4", "--prefetch", "2"]]
  ) {
    const result = await runScript("worker.ts", args);
    assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
  }
});
