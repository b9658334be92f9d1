/**
 * `queue.ts`: listing, requeueing and purging parked tasks, run as a real process against the
 * real broker. Parked tasks are made here the way a worker parks them: a confirmed copy in
 * `<queue>.dead` with the `task-*` headers.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { BODY_PREVIEW_CHARS, escapeText, previewBody } from "../lib/observe/parked_format.ts";
import { TASK_HEADERS } from "../lib/topology/task_headers.ts";
import { TaskQueue } from "../lib/topology/task_queue.ts";

const deadQueueName = (queue: string) => new TaskQueue(queue).deadQueue;
import {
  type Broker,
  BROKER_URL,
  DEADLINE_MS,
  openBroker,
  queueCounts,
  runScript,
  scriptPermissions,
  startWorker,
  uniqueQueue,
} from "./_helpers.ts";

/** A task to park. */
interface Parked {
  id: string;
  body: string | Uint8Array;
  attempts?: number;
  reason?: string;
}

const FAILED_AT = "2025-01-02T03:04:05.678Z";

/** Parks `tasks` in the dead queue of `queue`, in order, as a worker does after a last try. */
async function park(broker: Broker, queue: string, ...tasks: Parked[]): Promise<void> {
  const channel = await broker.connection.createConfirmChannel();
  channel.on("error", () => {});
  try {
    const dead = await new TaskQueue(queue).declareDead(channel);
    for (const task of tasks) {
      channel.sendToQueue(dead, Buffer.from(task.body), {
        persistent: true,
        messageId: task.id,
        headers: {
          [TASK_HEADERS.attempts]: task.attempts ?? 3,
          [TASK_HEADERS.reason]: task.reason ?? "exit code 3",
          [TASK_HEADERS.failedAt]: FAILED_AT,
          [TASK_HEADERS.worker]: "host-1",
          [TASK_HEADERS.queue]: queue,
        },
      });
    }
    await channel.waitForConfirms();
  } finally {
    await channel.close();
  }
}

/** The messages of `queue`, in order, read without removing them. */
async function peek(
  broker: Broker,
  queue: string,
): Promise<Array<{ id: string; body: string; headers: Record<string, unknown> }>> {
  const channel = await broker.connection.createChannel();
  channel.on("error", () => {});
  const seen = [];
  try {
    for (;;) {
      const message = await channel.get(queue, { noAck: false });
      if (message === false) break;
      seen.push({
        id: String(message.properties.messageId),
        body: message.content.toString(),
        headers: { ...message.properties.headers },
      });
    }
  } finally {
    channel.nackAll(true);
    await channel.close();
  }
  return seen;
}

function tasks(prefix: string, count: number): Parked[] {
  return Array.from({ length: count }, (_, i) => ({
    id: `${prefix}-${i + 1}`,
    body: `Task ${i + 1}.`,
    attempts: i + 1,
    reason: `exit code ${i + 1}`,
  }));
}

Deno.test("queue.ts dead lists parked tasks in order without removing them", async () => {
  const queue = uniqueQueue("dead_list");
  const dead = deadQueueName(queue);
  const parked = tasks("list", 20);
  await using broker = await openBroker();
  try {
    await park(broker, queue, ...parked);
    const first = await runScript("queue.ts", ["dead", "--queue", queue]);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stderr, "");
    assert.deepEqual(first.stdout.split("\n"), [
      ...parked.map((task) =>
        `${task.id}  attempts ${task.attempts}  failed-at ${FAILED_AT}  reason "${task.reason}"  body "${task.body}"`
      ),
      `20 parked tasks in "${dead}"`,
    ]);

    const second = await runScript("queue.ts", ["dead", "--queue", queue]);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout, first.stdout, "a second listing sees the same tasks, in order");
    assert.deepEqual(await queueCounts(dead), { ready: 20, unacked: 0, consumers: 0 });
    assert.deepEqual(
      (await peek(broker, dead)).map((task) => task.id),
      parked.map((task) => task.id),
    );
  } finally {
    await broker.deleteQueues(queue, dead);
  }
});

Deno.test("queue.ts dead --limit lists the oldest N and says how many are parked", async () => {
  const queue = uniqueQueue("dead_limit");
  const dead = deadQueueName(queue);
  await using broker = await openBroker();
  try {
    await park(broker, queue, ...tasks("limit", 5));
    const result = await runScript("queue.ts", ["dead", "--queue", queue, "--limit", "2"]);
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.split("\n");
    assert.deepEqual(lines.map((line) => line.split(" ", 1)[0]), [
      "limit-1",
      "limit-2",
      "Showing",
    ]);
    assert.equal(lines[2], `Showing 2 of 5 parked tasks in "${dead}" (--limit to see more)`);
    assert.equal(await broker.ready(dead), 5);
    assert.deepEqual(
      (await peek(broker, dead)).map((task) => task.id),
      tasks("limit", 5).map((t) => t.id),
    );
  } finally {
    await broker.deleteQueues(queue, dead);
  }
});

Deno.test("queue.ts dead --json prints one object per line with the task's fields", async () => {
  const queue = uniqueQueue("dead_json");
  const dead = deadQueueName(queue);
  const binary = new Uint8Array([0xff, 0x00, 0x41, 0xc3]);
  await using broker = await openBroker();
  try {
    await park(
      broker,
      queue,
      { id: "text", body: "Fourth message....", attempts: 4, reason: "timeout after 500 ms" },
      { id: "binary", body: binary },
    );
    const result = await runScript("queue.ts", ["dead", "--queue", queue, "--json"]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, `2 parked tasks in "${dead}"`, "the count goes to stderr");
    const [text, bytes, ...rest] = result.stdout.split("\n").map((line) => JSON.parse(line));
    assert.equal(rest.length, 0);
    assert.deepEqual(text, {
      id: "text",
      body: "Fourth message....",
      attempts: 4,
      reason: "timeout after 500 ms",
      failed_at: FAILED_AT,
      worker: "host-1",
      queue,
    });
    assert.equal(bytes.id, "binary");
    assert.equal(bytes.attempts, 3);
    assert.equal(typeof bytes.body, "string");
    assert.deepEqual(new Uint8Array(Buffer.from(bytes.body_base64, "base64")), binary);
    assert.equal(await broker.ready(dead), 2);
  } finally {
    await broker.deleteQueues(queue, dead);
  }
});

Deno.test("queue.ts dead shows bodies with control characters or invalid UTF-8 safely, one line each", async () => {
  const queue = uniqueQueue("dead_safe");
  const dead = deadQueueName(queue);
  await using broker = await openBroker();
  try {
    await park(
      broker,
      queue,
      { id: "esc", body: "red \x1b[31malert\x1b[0m\nsecond line\u202e" },
      { id: "bytes", body: new Uint8Array([0x41, 0xff, 0xfe, 0x42]) },
      { id: "long", body: "x".repeat(500) },
      { id: "evil\nid", body: "ok", reason: "bad\r\x1b]0;title\x07" },
    );
    const result = await runScript("queue.ts", ["dead", "--queue", queue]);
    assert.equal(result.code, 0, result.stderr);
    assert.doesNotMatch(
      result.stdout,
      /(?!\n)[\p{Cc}\p{Cf}]/u,
      "nothing a terminal acts on",
    );
    const lines = result.stdout.split("\n");
    assert.equal(lines.length, 5, "one line per task, and the count");
    assert.match(
      lines[0]!,
      /body "red \\u\{1b\}\[31malert\\u\{1b\}\[0m\\nsecond line\\u\{202e\}"$/,
    );
    assert.match(lines[1]!, /body "A\\xff\\xfeB"$/);
    assert.match(lines[2]!, new RegExp(`body "x{${BODY_PREVIEW_CHARS}}"… \\(500 bytes\\)$`));
    assert.match(lines[3]!, /^evil\\nid .* reason "bad\\r\\u\{1b\}\]0;title\\u\{7\}"/);
  } finally {
    await broker.deleteQueues(queue, dead);
  }
});

Deno.test("previewBody() and escapeText() escape whole characters and never cut an escape", () => {
  assert.equal(previewBody(new TextEncoder().encode("plain")), '"plain"');
  assert.equal(previewBody(new TextEncoder().encode("é👍")), '"é👍"');
  assert.equal(previewBody(new Uint8Array([0xe2, 0x82])), '"\\xe2\\x82"', "a cut-off sequence");
  assert.equal(previewBody(new Uint8Array([0xed, 0xa0, 0x80])), '"\\xed\\xa0\\x80"', "a surrogate");
  assert.equal(previewBody(new TextEncoder().encode("ab\x1b"), 4), '"ab"… (3 bytes)');
  assert.equal(escapeText('a"b\\c\u200bd'), 'a\\"b\\\\c\\u{200b}d');
});

Deno.test("queue.ts dead reports an empty or missing dead queue and creates nothing", async () => {
  const queue = uniqueQueue("dead_none");
  const result = await runScript("queue.ts", ["dead", "--queue", queue]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, `No parked tasks in "${deadQueueName(queue)}"`);
  assert.equal(await queueCounts(deadQueueName(queue)), undefined);
  assert.equal(await queueCounts(queue), undefined);
});

Deno.test("queue.ts requeue moves parked tasks back with their tries reset, and a worker does them", async () => {
  const queue = uniqueQueue("requeue");
  const dead = deadQueueName(queue);
  await using broker = await openBroker();
  try {
    await park(broker, queue, ...tasks("rq", 3));
    const result = await runScript("queue.ts", ["requeue", "--queue", queue]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(result.stdout.split("\n"), [
      'Requeued rq-1 (parked after 1 attempt: "exit code 1")',
      'Requeued rq-2 (parked after 2 attempts: "exit code 2")',
      'Requeued rq-3 (parked after 3 attempts: "exit code 3")',
      `Requeued 3 parked tasks from "${dead}" to "${queue}"`,
    ]);
    assert.equal(await broker.ready(dead), 0, "the dead queue is empty");
    const back = await peek(broker, queue);
    assert.deepEqual(back.map((task) => [task.id, task.body]), [
      ["rq-1", "Task 1."],
      ["rq-2", "Task 2."],
      ["rq-3", "Task 3."],
    ]);
    for (const task of back) {
      const { [TASK_HEADERS.move]: moveId, ...headers } = task.headers;
      assert.equal(typeof moveId, "string", "each move is marked as its own");
      assert.deepEqual(headers, { [TASK_HEADERS.attempts]: 0 }, "a fresh start");
    }

    await using worker = await startWorker(queue, ["--dot-ms", "1"]);
    await worker.waitForLines(/^ \[x\] Done$/, 3);
    worker.kill("SIGINT");
    assert.equal((await worker.status()).code, 0, worker.transcript());
    assert.deepEqual(worker.matching(/Received/), [
      " [x] Received 'Task 1.'",
      " [x] Received 'Task 2.'",
      " [x] Received 'Task 3.'",
    ]);
    assert.equal(await broker.ready(queue), 0);
    assert.equal(await broker.ready(dead), 0);
  } finally {
    await broker.deleteQueues(queue, dead);
  }
});

Deno.test("queue.ts requeue --limit moves the oldest N and leaves the rest parked", async () => {
  const queue = uniqueQueue("requeue_limit");
  const dead = deadQueueName(queue);
  await using broker = await openBroker();
  try {
    await park(broker, queue, ...tasks("rl", 5));
    const result = await runScript("queue.ts", ["requeue", "--queue", queue, "--limit", "2"]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(
      result.stdout.split("\n").at(-1),
      `Requeued 2 parked tasks from "${dead}" to "${queue}"; 3 still parked`,
    );
    assert.deepEqual((await peek(broker, queue)).map((task) => task.id), ["rl-1", "rl-2"]);
    assert.deepEqual((await peek(broker, dead)).map((task) => task.id), ["rl-3", "rl-4", "rl-5"]);
  } finally {
    await broker.deleteQueues(queue, dead);
  }
});

Deno.test("queue.ts requeue with nothing parked says so and exits 0", async () => {
  const queue = uniqueQueue("requeue_none");
  const dead = deadQueueName(queue);
  await using broker = await openBroker();
  try {
    const result = await runScript("queue.ts", ["requeue", "--queue", queue]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `No parked tasks in "${dead}"`);
    assert.equal(await broker.ready(queue), 0, "the task queue is declared as the project does");
  } finally {
    await broker.deleteQueues(queue, dead);
  }
});

Deno.test("queue.ts purge --dead --yes deletes the parked tasks and leaves the task queue alone", async () => {
  const queue = uniqueQueue("purge");
  const dead = deadQueueName(queue);
  await using broker = await openBroker();
  try {
    const channel = await broker.connection.createChannel();
    await channel.assertQueue(queue, { durable: true });
    await channel.close();
    await broker.publish(queue, "still to do");
    await park(broker, queue, ...tasks("purge", 3));
    const result = await runScript("queue.ts", ["purge", "--queue", queue, "--dead", "--yes"]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `Deleted 3 parked tasks from "${dead}"`);
    assert.equal(await broker.ready(dead), 0);
    assert.equal(await broker.ready(queue), 1);
  } finally {
    await broker.deleteQueues(queue, dead);
  }
});

Deno.test("queue.ts purge without a terminal and without --yes exits 2 and deletes nothing", async () => {
  const queue = uniqueQueue("purge_notty");
  const dead = deadQueueName(queue);
  await using broker = await openBroker();
  try {
    await park(broker, queue, ...tasks("keep", 2));
    const result = await runScript("queue.ts", ["purge", "--queue", queue, "--dead"], {
      stdin: "y\n",
    });
    assert.equal(result.code, 2);
    assert.equal(
      result.stderr,
      `Refusing to purge "${dead}" without confirmation: stdin is not a terminal (pass --yes to delete without asking)`,
    );
    assert.equal(result.stdout, "");
    assert.equal(await broker.ready(dead), 2);
  } finally {
    await broker.deleteQueues(queue, dead);
  }
});

Deno.test("queue.ts purge without --dead exits 2: the task queue is never purged", async () => {
  const queue = uniqueQueue("purge_main");
  const result = await runScript("queue.ts", ["purge", "--queue", queue, "--yes"]);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /^The purge command deletes parked tasks only: pass --dead/);
  assert.match(result.stderr, /\nUsage: deno task purge --dead/);
  assert.equal(await queueCounts(queue), undefined, "not even connected");
});

const HAS_SCRIPT = (() => {
  try {
    return new Deno.Command("script", { args: ["--version"] }).outputSync().success;
  } catch {
    return false;
  }
})();

/** Runs `queue.ts purge --dead` on a pseudo-terminal (util-linux `script`) and answers its prompt. */
async function purgeOnTerminal(
  queue: string,
  answer: string,
): Promise<{ code: number; output: string }> {
  const words = [Deno.execPath(), "run", ...scriptPermissions("queue.ts"), "queue.ts"];
  const child = new Deno.Command("script", {
    args: ["-qec", [...words, "purge", "--queue", queue, "--dead"].join(" "), "/dev/null"],
    cwd: new URL("../", import.meta.url),
    env: { AMQP_URL: BROKER_URL, NO_COLOR: "1" },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  let output = "";
  const decoder = new TextDecoder();
  const reading = (async () => {
    let answered = false;
    for await (const chunk of child.stdout) {
      output += decoder.decode(chunk, { stream: true });
      if (!answered && output.includes("[y/N]")) {
        answered = true;
        await writer.write(new TextEncoder().encode(`${answer}\n`));
        await writer.close();
      }
    }
  })();
  const timer = setTimeout(() => child.kill("SIGKILL"), DEADLINE_MS);
  try {
    const [{ code }] = await Promise.all([child.status, reading, child.stderr.cancel()]);
    return { code, output: output.replaceAll("\r\n", "\n") };
  } finally {
    clearTimeout(timer);
    await writer.close().catch(() => {});
  }
}

Deno.test({
  name: "queue.ts purge --dead asks on a terminal and deletes only after yes",
  ignore: !HAS_SCRIPT,
  async fn() {
    const queue = uniqueQueue("purge_tty");
    const dead = deadQueueName(queue);
    await using broker = await openBroker();
    try {
      await park(broker, queue, ...tasks("tty", 2));
      const declined = await purgeOnTerminal(queue, "n");
      assert.equal(declined.code, 0, declined.output);
      assert.match(
        declined.output,
        new RegExp(`Delete 2 parked tasks from "${dead}"\\? \\[y/N\\]`),
      );
      assert.match(declined.output, /Nothing deleted/);
      assert.equal(await broker.ready(dead), 2);

      const accepted = await purgeOnTerminal(queue, "y");
      assert.equal(accepted.code, 0, accepted.output);
      assert.match(accepted.output, new RegExp(`Deleted 2 parked tasks from "${dead}"`));
      assert.equal(await broker.ready(dead), 0);
    } finally {
      await broker.deleteQueues(queue, dead);
    }
  },
});

Deno.test("queue.ts exits 2 with usage for a missing or unknown command or a bad flag", async () => {
  for (
    const [args, message] of [
      [[], /^No command given: expected stats, dead, requeue or purge$/m],
      [["bogus"], /^Unknown command "bogus": expected stats, dead, requeue or purge$/m],
      [["--queue", "q", "dead"], /^Expected a command before "--queue"/m],
      [["dead", "--nope"], /Unknown option '--nope'/],
      [["dead", "--limit", "0"], /Invalid value "0" for --limit/],
      [["requeue", "--limit", "many"], /Invalid value "many" for --limit/],
      [["dead", "--queue", "amq.x"], /Invalid queue name "amq.x"/],
    ] as const
  ) {
    const result = await runScript("queue.ts", [...args]);
    assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
    assert.match(result.stderr, message);
    assert.match(result.stderr, /\nUsage: /);
    assert.equal(result.stderr.split("\n").length, 2, result.stderr);
    assert.equal(result.stdout, "");
  }
});

Deno.test("queue.ts --help lists the commands, and each command's --help its flags", async () => {
  const overview = await runScript("queue.ts", ["--help"]);
  assert.equal(overview.code, 0);
  for (const command of ["dead", "requeue", "purge"]) {
    assert.match(overview.stdout, new RegExp(`^  ${command} `, "m"));
  }
  for (
    const [command, flags] of [
      ["dead", ["--url", "--queue", "--limit", "--json", "--heartbeat", "--ca", "--help"]],
      ["requeue", ["--url", "--queue", "--limit", "--heartbeat", "--ca", "--help"]],
      ["purge", ["--url", "--queue", "--dead", "--yes", "--heartbeat", "--ca", "--help"]],
    ] as const
  ) {
    const help = await runScript("queue.ts", [command, "--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, new RegExp(`Usage: deno task ${command}`));
    for (const flag of flags) assert.ok(help.stdout.includes(flag), `${command} ${flag}`);
  }
});

Deno.test("queue.ts exits 1 with one line naming the address, without the password, when the broker is down", async () => {
  for (
    const args of [["dead"], ["dead", "--json"], ["requeue"], ["purge", "--dead", "--yes"]]
  ) {
    const result = await runScript("queue.ts", args, {
      env: { AMQP_URL: "amqp://alice:s3cret@127.0.0.1:1/" },
    });
    assert.equal(result.code, 1, args.join(" "));
    assert.equal(result.stderr, `Cannot connect to "amqp://127.0.0.1:1": connection refused`);
    assert.equal(result.stdout, "");
  }
});
