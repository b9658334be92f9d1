import assert from "node:assert/strict";
import { brokerAnswers, startBroker, stopBroker, withManagementApi } from "./_broker_admin.ts";
import {
  type Broker,
  MANAGEMENT_URL,
  onBrokerHost,
  openBroker,
  queueCounts,
  runScript,
  type ScriptProcess,
  startScript,
  uniqueQueue,
  waitUntil,
} from "./_helpers.ts";

/** Starts a worker serving metrics on a free port; resolves with it and the port. */
async function startMetricsWorker(queue: string, args: string[]): Promise<[ScriptProcess, number]> {
  const worker = startScript("worker.ts", ["--queue", queue, "--metrics-port", "0", ...args]);
  const listening = () => worker.stderr.find((line) => line.startsWith("Metrics on "));
  await waitUntil("the metrics port", () => listening() !== undefined);
  return [worker, Number(/:(\d+)\/metrics/.exec(listening()!)![1])];
}

async function scrape(port: number): Promise<Map<string, number>> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`);
  const samples = new Map<string, number>();
  for (const line of (await response.text()).split("\n")) {
    const match = /^(\S+) (\S+)$/.exec(line);
    if (match && !line.startsWith("#")) samples.set(match[1]!, Number(match[2]));
  }
  return samples;
}

async function health(port: number): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${port}/healthz`);
  await response.body?.cancel();
  return response.status;
}

Deno.test("queue.ts stats agrees with rabbitmqctl on ready and consumers, and counts parked tasks", async () => {
  const queue = uniqueQueue("stats");
  await using broker = await openBroker();
  const channel = await broker.connection.createChannel();
  await channel.assertQueue(queue, { durable: true });
  await channel.assertQueue(`${queue}.dead`, { durable: true });
  await channel.close();
  try {
    await broker.publish(queue, "a", "b", "c");
    await broker.publish(`${queue}.dead`, "parked");
    const result = await runScript("queue.ts", [
      "stats",
      "--queue",
      queue,
      "--json",
      "--management-url",
      "none",
    ]);
    assert.equal(result.code, 0, result.stderr);
    const stats = JSON.parse(result.stdout);
    const counts = await queueCounts(queue);
    assert.equal(stats.queue, queue);
    assert.equal(stats.ready, counts!.ready);
    assert.equal(stats.consumers, counts!.consumers);
    assert.equal(stats.unacked, null, "unknown without the management API");
    assert.equal(stats.dead, 1);
    const human = await runScript("queue.ts", [
      "stats",
      "--queue",
      queue,
      "--management-url",
      "http://127.0.0.1:1",
    ]);
    assert.equal(human.code, 0, human.stderr);
    assert.match(
      human.stdout,
      new RegExp(
        `^Queue "${queue}": 3 ready, unacked unknown, 0 consumers; 0 waiting for their time; 1 parked`,
      ),
    );
    const missing = await runScript("queue.ts", ["stats", "--queue", `${queue}_none`]);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, `No queue "${queue}_none" on the broker`);
  } finally {
    await broker.deleteQueues(queue, `${queue}.dead`);
  }
});

const MANAGEMENT_TEST =
  "queue.ts stats uses the management API, when it answers, for unacked counts and rates";

Deno.test(
  MANAGEMENT_URL === undefined
    ? onBrokerHost(
      MANAGEMENT_TEST,
      "enabling the management plugin needs rabbitmq-plugins on the broker's machine; set TEST_MANAGEMENT_URL instead",
    )
    : { name: MANAGEMENT_TEST },
  async () => {
    const queue = uniqueQueue("mgmt");
    await withManagementApi(async (managementUrl) => {
      await using broker = await openBroker();
      try {
        await checkStats(managementUrl, broker, queue);
      } finally {
        // After the worker has gone: a worker declares its queue again when it is deleted.
        await broker.deleteQueues(queue, `${queue}.dead`);
      }
    });
  },
);

async function checkStats(
  managementUrl: string,
  broker: Broker,
  queue: string,
): Promise<void> {
  // The task outlasts the test: the management API's figures lag by up to its collection
  // interval, and a task that finished meanwhile would let the worker take the waiting one.
  await using worker = startScript("worker.ts", ["--queue", queue, "--dot-ms", "600000"]);
  await worker.waitForLines(/Waiting for messages/);
  await broker.publish(queue, "busy.", "waiting");
  await worker.waitForLines(/Received 'busy\.'/);
  let stats: Record<string, unknown> = {};
  await waitUntil("stats with 1 unacked", async () => {
    const result = await runScript("queue.ts", [
      "stats",
      "--queue",
      queue,
      "--json",
      "--management-url",
      managementUrl,
    ]);
    stats = JSON.parse(result.stdout);
    return stats.unacked === 1;
  }, 20_000);
  assert.equal(stats.ready, 1);
  assert.equal(stats.consumers, 1);
  assert.ok(stats.rates !== null && typeof stats.rates === "object");
}

Deno.test("worker --json prints one JSON object per line, each with its event", async () => {
  const queue = uniqueQueue("json");
  await using broker = await openBroker();
  try {
    await using worker = startScript("worker.ts", [
      "--queue",
      queue,
      "--json",
      "--exec",
      'b=$(cat); echo "out $b"; [ "$b" = good ]',
      "--max-retries",
      "1",
      "--retry-delay",
      "50",
    ]);
    await waitUntil(
      "started",
      () => worker.stdout.some((line) => line.includes('"event":"started"')),
    );
    await broker.publish(queue, "good", "bad");
    await waitUntil(
      "the bad task parked",
      () => worker.stdout.some((line) => line.includes('"event":"dead_lettered"')),
    );
    worker.kill("SIGTERM");
    assert.equal((await worker.status()).code, 0);
    const events = worker.stdout.map((line) => JSON.parse(line) as Record<string, unknown>);
    for (const event of events) {
      assert.equal(typeof event.event, "string");
      assert.ok(!Number.isNaN(Date.parse(String(event.time))));
    }
    const kinds = events.map((event) => event.event);
    for (
      const kind of [
        "started",
        "consuming",
        "received",
        "output",
        "done",
        "retried",
        "dead_lettered",
        "shutdown",
      ]
    ) {
      assert.ok(kinds.includes(kind), `${kind} in ${kinds}`);
    }
    const done = events.find((event) => event.event === "done")!;
    assert.equal(typeof done.id, "string");
    assert.equal(done.attempt, 1);
    assert.equal(typeof done.duration_ms, "number");
  } finally {
    await broker.deleteTaskQueues(queue);
  }
});

Deno.test("worker --metrics-port counts tasks by outcome, as they happened", async () => {
  const queue = uniqueQueue("metrics");
  await using broker = await openBroker();
  try {
    const [worker, port] = await startMetricsWorker(queue, [
      "--exec",
      'case "$(cat)" in bad*) exit 1;; esac',
      "--max-retries",
      "1",
      "--retry-delay",
      "50",
    ]);
    await using _worker = worker;
    await waitUntil("consuming", async () => (await health(port)) === 200);
    await broker.publish(queue, "good1", "good2", "good3", "bad1", "good4", "bad2", "good5");
    await waitUntil(
      "two parked",
      () => worker.stderr.filter((line) => /parked in/.test(line)).length === 2,
    );
    await waitUntil("five done", () => worker.matching(/^ \[x\] Done$/).length === 5);
    const samples = await scrape(port);
    const total = (outcome: string) =>
      samples.get(`workqueue_tasks_total{queue="${queue}",outcome="${outcome}"}`);
    assert.equal(total("succeeded"), 5);
    assert.equal(total("failed"), 4, "two bad tasks, two tries each");
    assert.equal(total("retried"), 2);
    assert.equal(total("dead_lettered"), 2);
    assert.equal(samples.get(`workqueue_tasks_in_flight{queue="${queue}"}`), 0);
    assert.equal(samples.get(`workqueue_task_duration_seconds_count{queue="${queue}"}`), 9);
    assert.equal(samples.get(`workqueue_connected{queue="${queue}"}`), 1);
  } finally {
    await broker.deleteTaskQueues(queue);
  }
});

Deno.test("worker /healthz is 503 while the broker is down and 200 again after recovery", async () => {
  const queue = uniqueQueue("health");
  try {
    const [worker, port] = await startMetricsWorker(queue, ["--dot-ms", "1"]);
    await using _worker = worker;
    await waitUntil("healthy", async () => (await health(port)) === 200);
    await stopBroker();
    await waitUntil("unhealthy while the broker is down", async () => (await health(port)) === 503);
    const samples = await scrape(port);
    assert.equal(samples.get(`workqueue_connected{queue="${queue}"}`), 0);
    await startBroker();
    await waitUntil("healthy after recovery", async () => (await health(port)) === 200, 30_000);
  } finally {
    if (!(await brokerAnswers())) await startBroker();
    await using broker = await openBroker();
    await broker.deleteQueues(queue, `${queue}.dead`);
  }
});

Deno.test("a worker prints a periodic one-line summary when it did work", async () => {
  const queue = uniqueQueue("summary");
  await using broker = await openBroker();
  try {
    await using worker = startScript("worker.ts", [
      "--queue",
      queue,
      "--dot-ms",
      "1",
      "--summary-interval",
      "1",
    ]);
    await worker.waitForLines(/Waiting for messages/);
    await broker.publish(queue, "a.", "b.", "c.");
    await waitUntil(
      "the summary",
      () =>
        worker.stderr.some((line) =>
          /^ \[=\] 3 tasks in the last 1 s \([\d.]+\/s\): 3 done, 0 failed$/.test(line)
        ),
      5_000,
    );
  } finally {
    await broker.deleteQueues(queue, `${queue}.dead`);
  }
});

Deno.test("--help of every script lists every flag of its README table", async () => {
  const { DOCUMENTED_COMMANDS } = await import("../tools/readme.ts");
  for (const [name, command] of Object.entries(DOCUMENTED_COMMANDS)) {
    const [script, sub] = name.startsWith("queue_")
      ? ["queue.ts", name.slice(6)]
      : [`${name}.ts`, undefined];
    const result = await runScript(script, sub ? [sub, "--help"] : ["--help"]);
    assert.equal(result.code, 0, `${name}: ${result.stderr}`);
    for (const flag of command.flags) {
      assert.ok(result.stdout.includes(`--${flag.name}`), `${name} --${flag.name}`);
    }
  }
});
