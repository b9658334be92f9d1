/**
 * Delayed tasks against the real broker: `new_task.ts --delay/--at`, `Producer.send` and
 * `sendMany` with a delay, retries through the delay levels, where a long delay waits, and what
 * `stats` says about the tasks waiting for their time.
 */

import assert from "node:assert/strict";
import { topicMatches } from "./_topic.ts";
import { connect, type QueueType, TaskQueue } from "../mod.ts";
import { checkQueue } from "../lib/amqp.ts";
import {
  delayLevelName,
  delayRoutingKey,
  levelTtl,
  remainingAfter,
} from "../lib/topology/delays.ts";
import { TASK_HEADERS } from "../lib/topology/task_headers.ts";
import {
  BROKER_URL,
  openBroker,
  rabbitmqctl,
  runScript,
  type ScriptProcess,
  startScript,
  uniqueQueue,
  waitUntil,
} from "./_helpers.ts";

const DAY = 86_400_000;
/** How late a task may be in these tests: the promise is a second or two, on a loaded machine. */
const LATE_MS = 3000;

interface Arrival {
  body: string;
  at: number;
}

/** A worker that logs each task's body and the time it started it, in ms, to `$OUT/log`. */
async function startTimingWorker(
  queue: string,
  out: string,
  type: QueueType,
  args: string[] = [],
): Promise<ScriptProcess> {
  const worker = startScript("worker.ts", [
    "--queue",
    queue,
    "--queue-type",
    type,
    "--exec",
    'echo "$(cat) $(date +%s%3N)" >> "$OUT/log"',
    ...args,
  ], { env: { OUT: out } });
  await worker.waitForLines(/Waiting for messages/);
  return worker;
}

async function arrivals(out: string): Promise<Arrival[]> {
  const text = await Deno.readTextFile(`${out}/log`).catch(() => "");
  return text.trim().split("\n").filter((line) => line !== "").map((line) => {
    const [body, at] = line.split(" ");
    return { body: body!, at: Number(at) };
  });
}

/** Sends one task with `new_task.ts` and returns the due time it printed. */
async function sendDelayed(queue: string, type: QueueType, flags: string[], body: string) {
  const sent = await runScript("new_task.ts", [
    "--queue",
    queue,
    "--queue-type",
    type,
    ...flags,
    body,
  ]);
  assert.equal(sent.code, 0, sent.stderr);
  const due = / \[x\] Sent '(.*)', due at (\S+)$/.exec(sent.stdout);
  assert.ok(due, sent.stdout);
  assert.equal(due[1], body);
  return Date.parse(due[2]!);
}

/** `queue.ts stats --json` for `queue`. */
async function stats(queue: string): Promise<Record<string, unknown>> {
  const result = await runScript("queue.ts", [
    "stats",
    "--queue",
    queue,
    "--json",
    "--management-url",
    "none",
  ]);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout);
}

/** Ready counts of every level that holds tasks, by level. */
async function levelCounts(queue: string): Promise<Record<number, number>> {
  await using broker = await openBroker();
  const levels = await Promise.all(
    new TaskQueue(queue).delayQueues.map((name) => checkQueue(broker.connection, name)),
  );
  const counts: Record<number, number> = {};
  levels.forEach((info, level) => {
    if (info && info.messageCount > 0) counts[level] = info.messageCount;
  });
  return counts;
}

for (const type of ["classic", "quorum"] as const) {
  Deno.test(`${type}: tasks sent with --delay 1h, 3s and 1s: the 1 s one first, then the 3 s one, each no earlier than due; the 1 h one waits, holding back neither`, async () => {
    const queue = uniqueQueue(`delay_${type}`);
    const out = await Deno.makeTempDir();
    try {
      await using worker = await startTimingWorker(queue, out, type);
      const hourDue = await sendDelayed(queue, type, ["--delay", "1h"], "hour");
      const threeDue = await sendDelayed(queue, type, ["--delay", "3s"], "three");
      const oneDue = await sendDelayed(queue, type, ["--delay", "1s"], "one");
      await waitUntil("two tasks done", async () => (await arrivals(out)).length >= 2, 15_000);
      const [first, second] = await arrivals(out);
      assert.deepEqual([first!.body, second!.body], ["one", "three"], worker.transcript());
      for (const [arrival, due] of [[first!, oneDue], [second!, threeDue]] as const) {
        assert.ok(arrival.at >= due, `${arrival.body} came ${due - arrival.at} ms early`);
        assert.ok(arrival.at - due < LATE_MS, `${arrival.body} came ${arrival.at - due} ms late`);
      }
      const waiting = await stats(queue);
      assert.equal(waiting.waiting, 1, JSON.stringify(waiting));
      assert.equal(waiting.ready, 0);
      const next = waiting.next_due as { at: string; exact: boolean };
      if (type === "classic") {
        // Read from the task's own header: exact.
        assert.deepEqual(next, { at: new Date(hourDue).toISOString(), exact: true });
      } else {
        // Quorum levels are never read: a bound, no earlier than the task's due time.
        assert.equal(next.exact, false);
        assert.ok(Date.parse(next.at) >= hourDue, `${next.at} is before ${hourDue}`);
      }
      assert.equal((await arrivals(out)).length, 2, "the 1 h task is not done");
    } finally {
      await using broker = await openBroker();
      await broker.deleteTaskQueues(queue);
      await Deno.remove(out, { recursive: true });
    }
  });

  Deno.test(`${type}: a 30-day delay waits in level 31 (2^31 ms), and its routing key holds the rest of its way down`, async () => {
    const queue = uniqueQueue(`month_${type}`);
    const connection = await connect(BROKER_URL);
    await using broker = await openBroker();
    try {
      const producer = await connection.createProducer(new TaskQueue(queue, { type }));
      const before = Date.now();
      await producer.send("in a month", { delay: 30 * DAY });
      const after = Date.now();
      assert.deepEqual(await levelCounts(queue), { 31: 1 }, "only level 31 holds it");
      assert.equal(await broker.ready(queue), 0);
      // The level waits 2^31 ms and passes its tasks on to level 30.
      const listed = await rabbitmqctl(
        "list_queues",
        "-q",
        "--formatter",
        "json",
        "name",
        "arguments",
      );
      const rows = JSON.parse(listed) as Array<{
        name: string;
        arguments: Array<[string, string, unknown]> | Record<string, unknown>;
      }>;
      const row = rows.find((row) => row.name === delayLevelName(queue, 31))!;
      // [name, type, value] triples on 3.x, an object on some 4.x versions.
      const args = Array.isArray(row.arguments)
        ? Object.fromEntries(row.arguments.map(([name, , value]) => [name, value]))
        : row.arguments;
      const level = { arguments: args };
      assert.equal(level.arguments["x-message-ttl"], 2 ** 31);
      assert.equal(level.arguments["x-dead-letter-exchange"], delayLevelName(queue, 30));
      // RabbitMQ 4 lists a classic queue's type among its arguments, 3.10 does not.
      assert.equal(level.arguments["x-queue-type"] ?? "classic", type);
      if (type === "quorum") {
        assert.equal(level.arguments["x-dead-letter-strategy"], "at-least-once");
      }

      const channel = await broker.connection.createChannel();
      const message = await channel.get(delayLevelName(queue, 31), { noAck: false });
      assert.ok(message, "the task is in level 31");
      assert.equal(message.content.toString(), "in a month");
      const key = message.fields.routingKey;
      assert.equal(key, delayRoutingKey(30 * DAY));
      const rest = remainingAfter(key, 31)!;
      assert.equal(rest, 30 * DAY - 2 ** 31, "about 5.1 days to go after level 31");
      const due = Date.parse(String(message.properties.headers?.[TASK_HEADERS.dueAt]));
      assert.ok(due >= before + 30 * DAY && due <= after + 30 * DAY, "due in 30 days");
      channel.nackAll(true);
      await channel.close();

      // The rest of its way, as the broker's own bindings route it: one level per set bit below
      // 31, each waiting 2^k ms, then the task queue.
      const bindings = await listBindings(queue);
      const path: string[] = [];
      let exchange = delayLevelName(queue, 30);
      let waited = 0;
      for (let hops = 0; hops < 40 && exchange !== ""; hops++) {
        const matches = bindings.filter((b) =>
          b.source === exchange && topicMatches(b.routingKey, key)
        );
        assert.equal(matches.length, 1, `one way out of ${exchange}: ${JSON.stringify(matches)}`);
        const [{ destination, kind }] = matches as [Binding];
        if (kind === "exchange") {
          exchange = destination;
          continue;
        }
        path.push(destination);
        if (destination === queue) break;
        const k = Number(destination.slice(-2));
        waited += levelTtl(k);
        exchange = k === 0 ? "" : delayLevelName(queue, k - 1);
        if (k === 0) path.push(queue);
      }
      assert.equal(path.at(-1), queue, `ends in the task queue: ${path}`);
      assert.equal(waited, rest, "the levels on its way wait exactly the rest of its delay");
      const bits = rest.toString(2).replaceAll("0", "").length;
      assert.equal(path.length - 1, bits, "one level per set bit");

      if (type === "classic") {
        const found = await stats(queue);
        assert.equal(found.waiting, 1);
        assert.deepEqual(found.next_due, { at: new Date(due).toISOString(), exact: true });
      }
      await producer.close();
    } finally {
      await connection.close();
      await broker.deleteTaskQueues(queue);
    }
  });
}

interface Binding {
  source: string;
  destination: string;
  kind: "queue" | "exchange";
  routingKey: string;
}

async function listBindings(queue: string): Promise<Binding[]> {
  const listed = await rabbitmqctl(
    "list_bindings",
    "-q",
    "--formatter",
    "json",
    "source_name",
    "destination_name",
    "destination_kind",
    "routing_key",
  );
  const rows = JSON.parse(listed) as Array<Record<string, string>>;
  return rows.filter((row) => row.source_name!.startsWith(`${queue}.delay.`)).map((row) => ({
    source: row.source_name!,
    destination: row.destination_name!,
    kind: row.destination_kind as "queue" | "exchange",
    routingKey: row.routing_key!,
  }));
}

Deno.test("stats finds the next task due behind the head of a level: one due in 25 days sent after one due in 30", async () => {
  const queue = uniqueQueue("next_due");
  const connection = await connect(BROKER_URL);
  try {
    const producer = await connection.createProducer(queue);
    await producer.send("thirty", { delay: 30 * DAY });
    const sent = Date.now();
    await producer.send("twenty-five", { at: new Date(sent + 25 * DAY) });
    await producer.send("forty", { delay: 40 * DAY });
    assert.deepEqual(await levelCounts(queue), { 31: 3 }, "all three in level 31, oldest first");
    const found = await stats(queue);
    assert.equal(found.waiting, 3);
    assert.deepEqual(found.next_due, {
      at: new Date(sent + 25 * DAY).toISOString(),
      exact: true,
    });
    const human = await runScript("queue.ts", [
      "stats",
      "--queue",
      queue,
      "--management-url",
      "none",
    ]);
    assert.match(
      human.stdout,
      /; 3 waiting for their time; 0 parked\n {2}next due \S+ \(in 25 d 0 h\)$/,
    );
    // Peeking gave every task back, in place.
    assert.deepEqual(await levelCounts(queue), { 31: 3 });
    await using broker = await openBroker();
    const channel = await broker.connection.createChannel();
    const bodies: string[] = [];
    for (
      let m = await channel.get(delayLevelName(queue, 31));
      m;
      m = await channel.get(delayLevelName(queue, 31))
    ) {
      bodies.push(m.content.toString());
    }
    channel.nackAll(true);
    await channel.close();
    assert.deepEqual(bodies, ["thirty", "twenty-five", "forty"]);
  } finally {
    await connection.close();
    await using broker = await openBroker();
    await broker.deleteTaskQueues(queue);
  }
});

Deno.test("Producer.sendMany with one delay for all, and send with at: none reaches a worker early", async () => {
  const queue = new TaskQueue(uniqueQueue("delay_lib"));
  const connection = await connect(BROKER_URL);
  try {
    const seen: Arrival[] = [];
    const worker = connection.createWorker(queue, (task) => {
      seen.push({ body: task.text(), at: Date.now() });
    });
    await worker.ready;
    const producer = await connection.createProducer(queue);
    const started = Date.now();
    const result = await producer.sendMany(["a", "b", "c"], { delay: 1500 });
    assert.equal(result.confirmed, 3);
    const at = new Date(Date.now() + 1000);
    await producer.send("at", { at });
    await producer.send("now");
    await waitUntil("five tasks", () => seen.length === 5, 10_000);
    assert.equal(seen[0]!.body, "now", "a task without a delay does not wait");
    assert.ok(seen[0]!.at - started < 1000);
    const byBody = new Map(seen.map((arrival) => [arrival.body, arrival.at]));
    assert.ok(byBody.get("at")! >= at.getTime(), "the at task came early");
    for (const body of ["a", "b", "c"]) {
      assert.ok(byBody.get(body)! >= started + 1500, `${body} came early`);
      assert.ok(byBody.get(body)! < started + 1500 + LATE_MS, `${body} came late`);
    }
    await worker.stop();
  } finally {
    await connection.close();
    await using broker = await openBroker();
    await broker.deleteTaskQueues(queue.name);
  }
});

Deno.test("new_task.ts --at and --stdin --delay: due at the time given, or each the delay after it is sent", async () => {
  const queue = uniqueQueue("delay_cli");
  const out = await Deno.makeTempDir();
  try {
    await using _worker = await startTimingWorker(queue, out, "classic");
    const at = new Date(Math.ceil((Date.now() + 2000) / 1000) * 1000);
    const due = await sendDelayed(queue, "classic", ["--at", at.toISOString()], "at");
    assert.equal(due, at.getTime());
    const started = Date.now();
    const many = await runScript("new_task.ts", ["--queue", queue, "--stdin", "--delay", "1s"], {
      stdin: "x\ny\n",
    });
    assert.equal(many.code, 0, many.stderr);
    assert.match(many.stdout, /^ \[x\] Sent 2 tasks in \S+ s$/);
    await waitUntil("three tasks", async () => (await arrivals(out)).length === 3, 10_000);
    const byBody = new Map((await arrivals(out)).map((arrival) => [arrival.body, arrival.at]));
    assert.ok(byBody.get("at")! >= at.getTime(), "--at came early");
    for (const body of ["x", "y"]) assert.ok(byBody.get(body)! >= started + 1000, body);
  } finally {
    await using broker = await openBroker();
    await broker.deleteTaskQueues(queue);
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("new_task.ts refuses a delay without a unit, past 49 days, a bad time, or --delay with --at, with exit 2", async () => {
  const cases: [string[], RegExp][] = [
    [["--delay", "90"], /Invalid duration "90": expected a number and a unit/],
    [["--delay", "50d"], /Invalid value "50d" for --delay: at most 4294967295 ms/],
    [["--at", "2026-02-30T18:00:00Z"], /Invalid time "2026-02-30T18:00:00Z"/],
    [["--at", new Date(Date.now() + 60 * DAY).toISOString()], /at most 4294967295 ms/],
    [["--delay", "1s", "--at", "2030-01-01T00:00:00Z"], /Give either --delay or --at, not both/],
  ];
  for (const [flags, message] of cases) {
    const result = await runScript("new_task.ts", ["--url", "amqp://127.0.0.1:1", ...flags, "x"]);
    assert.equal(result.code, 2, `${flags}: ${result.stderr}`);
    assert.match(result.stderr, message);
  }
});

Deno.test("a delay level deleted under a running worker: that retry is parked, and the next retry declares the levels again", async () => {
  const queue = uniqueQueue("lostlevel");
  await using broker = await openBroker();
  try {
    // 100 ms is 1100100 in binary: a retry starts in level 6.
    await using worker = startScript("worker.ts", [
      "--queue",
      queue,
      "--max-retries",
      "1",
      "--retry-delay",
      "100",
      "--exec",
      "exit 3",
    ]);
    await worker.waitForLines(/Waiting for messages/);
    const parked = () => worker.stderr.filter((line) => /parked in/.test(line));
    await broker.publish(queue, "first");
    await waitUntil("first parked", () => parked().length === 1);
    assert.match(parked()[0]!, /after 2 attempts/, worker.transcript());
    await broker.deleteQueues(delayLevelName(queue, 6));
    await broker.publish(queue, "second");
    await waitUntil("second parked", () => parked().length === 2);
    assert.match(
      parked()[1]!,
      /could not be moved to .*\.delay\.L06 \(Cannot move task to ".*\.delay\.L06": it routes the task to no queue\)\) after 1 attempts/,
    );
    await broker.publish(queue, "third");
    await waitUntil("third parked", () => parked().length === 3);
    assert.match(parked()[2]!, /after 2 attempts/, "retried again: the levels are back");
    assert.equal(await broker.ready(`${queue}.dead`), 3);
    assert.ok((await checkQueue(broker.connection, delayLevelName(queue, 6))) !== null);
  } finally {
    await broker.deleteTaskQueues(queue);
  }
});
