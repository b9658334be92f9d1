/**
 * Hostile input, one test per class: credentials kept out of output and out of task commands,
 * bytes from messages kept off the terminal, and bad values refused with one line and exit 2.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { rabbitmqctl } from "./_broker_admin.ts";
import {
  type Broker,
  BROKER_URL,
  brokerUrlWith,
  DEADLINE_MS,
  openBroker,
  queueCounts,
  runScript,
  scriptPermissions,
  startScript,
  startWorker,
  uniqueQueue,
  waitUntil,
} from "./_helpers.ts";

const SECRET = `Pw${crypto.randomUUID().replaceAll("-", "")}`;

/** Declares `queue` as the tutorial does and publishes `body` with message id `id`, confirmed. */
async function publishWithId(queue: string, body: string, id: string): Promise<void> {
  await using broker = await openBroker();
  const channel = await broker.connection.createConfirmChannel();
  await channel.assertQueue(queue, { durable: true });
  channel.sendToQueue(queue, Buffer.from(body), { persistent: true, messageId: id });
  await channel.waitForConfirms();
  await channel.close();
}

function assertOneLine(stderr: string, pattern: RegExp): void {
  const lines = stderr.trim().split("\n");
  assert.match(lines[0]!, pattern);
  assert.ok(lines.length <= 2, `one line (and the usage hint), got:\n${stderr}`);
  assert.doesNotMatch(stderr, /^\s+at /m, "no stack trace");
}

Deno.test("an --exec command's environment has no broker credentials", async () => {
  const queue = uniqueQueue("env");
  const user = `envtest_${crypto.randomUUID().slice(0, 8)}`;
  const out = await Deno.makeTempDir();
  await rabbitmqctl("add_user", user, SECRET);
  await rabbitmqctl("set_permissions", "-p", "/", user, ".*", ".*", ".*");
  try {
    await using worker = startScript(
      "worker.ts",
      ["--queue", queue, "--exec", 'env > "$OUT/env"'],
      { env: { AMQP_URL: brokerUrlWith({ username: user, password: SECRET }), OUT: out } },
    );
    await worker.waitForLines(/Waiting for messages/);
    await using broker = await openBroker();
    await publishWithId(queue, "x", "task-1");
    await worker.waitForLines(/^ \[x\] Done$/);
    const env = await Deno.readTextFile(`${out}/env`);
    assert.match(env, /^TASK_ID=/m, "the task's own variables are there");
    assert.doesNotMatch(env, new RegExp(SECRET), "the password is not");
    assert.doesNotMatch(env, /^AMQP_URL=/m);
    worker.kill("SIGTERM");
    assert.equal((await worker.status()).code, 0);
    assert.doesNotMatch([...worker.stdout, ...worker.stderr].join("\n"), new RegExp(SECRET));
    await broker.deleteQueues(queue, `${queue}.dead`);
  } finally {
    await rabbitmqctl("delete_user", user).catch(() => {});
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("a broker URL with an unencoded , / or bad %-escape in its password is refused without showing it", async () => {
  for (
    const url of [
      `amqp://guest:${SECRET.slice(0, 10)},${SECRET.slice(10)}@127.0.0.1:5672`,
      `amqp://guest:${SECRET.slice(0, 10)}/${SECRET.slice(10)}@127.0.0.1:5672`,
      `amqp://guest:${SECRET}%zz@127.0.0.1:5672`,
    ]
  ) {
    for (const script of ["new_task.ts", "worker.ts"]) {
      const result = await runScript(
        script,
        ["--queue", uniqueQueue("url"), "x"].slice(
          0,
          script === "worker.ts" ? 2 : 3,
        ),
        { env: { AMQP_URL: url } },
      );
      assert.equal(result.code, 2, `${script} ${url}: ${result.stderr}`);
      assertOneLine(result.stderr, /^Invalid broker URL/);
      for (const part of [SECRET.slice(0, 10), SECRET.slice(10)]) {
        assert.ok(!(result.stdout + result.stderr).includes(part), `${script} showed ${part}`);
      }
    }
  }
});

Deno.test("control characters in a task's id or body never reach the worker's terminal lines raw; --json stays exact", async () => {
  const queue = uniqueQueue("ctl");
  const body = "fine\x1b]0;pwned\x07\r [x] Done\n\u202etxt.exe\x9b";
  const id = "id\x1b[2J\r";
  try {
    await using broker = await openBroker();
    await publishWithId(queue, body, id);
    await publishWithId(queue, body, id);
    await using human = startScript("worker.ts", [
      "--queue",
      queue,
      "--max-tasks",
      "1",
      "--exec",
      `printf '%s' "$TASK_ID"; exit 3`,
      "--max-retries",
      "0",
    ]);
    assert.equal((await human.status()).code, 0);
    const text = [...human.stdout, ...human.stderr].join("\n");
    // deno-lint-ignore no-control-regex
    assert.doesNotMatch(text, /[\x00-\x08\x0b-\x1f\x7f\x80-\x9f\u202e]/);
    assert.ok(text.includes(String.raw`\u{1b}]0;pwned\u{7}\r [x] Done\n\u{202e}`), text);
    assert.equal(human.stdout.filter((line) => line === " [x] Done").length, 0);
    await using json = startScript("worker.ts", [
      "--queue",
      queue,
      "--max-tasks",
      "1",
      "--json",
      "--dot-ms",
      "0",
    ]);
    assert.equal((await json.status()).code, 0);
    const received = json.stdout.map((line) => JSON.parse(line)).find((e) =>
      e.event === "received"
    );
    assert.equal(received.id, id, "JSON carries the id exactly");
    await broker.deleteQueues(queue, `${queue}.dead`);
  } finally {
    await using broker = await openBroker();
    await broker.deleteQueues(queue, `${queue}.dead`);
  }
});

Deno.test("a long body is cut in the Received line, with its full size", async () => {
  const queue = uniqueQueue("long");
  await using broker = await openBroker();
  try {
    await publishWithId(queue, "a".repeat(5_000_000), "long");
    await using worker = await startWorker(queue, ["--dot-ms", "0", "--max-tasks", "1"]);
    assert.equal((await worker.status()).code, 0);
    const line = worker.matching(/Received/)[0]!;
    assert.ok(line.length < 400, `cut: ${line.length} chars`);
    assert.match(line, /\.\.\. \(5000000 bytes\)'$/);
    await waitUntil("the task acked", async () => (await queueCounts(queue))?.ready === 0);
  } finally {
    await broker.deleteQueues(queue, `${queue}.dead`);
  }
});

Deno.test("durations past what a timer can wait, and a retry delay past the schedule's cap, are usage errors", async () => {
  const cases: [string, string[]][] = [
    ["new_task.ts", ["--confirm-timeout", "3000000000", "x"]],
    ["worker.ts", ["--shutdown-timeout", "3000000000"]],
    ["worker.ts", ["--task-timeout", "3000000000"]],
    ["worker.ts", ["--retry-delay", "600001"]],
  ];
  for (const [script, args] of cases) {
    const result = await runScript(script, ["--queue", uniqueQueue("dur"), ...args]);
    assert.equal(result.code, 2, `${script} ${args.join(" ")}: ${result.stderr}`);
    assertOneLine(result.stderr, /^Invalid value "\d+" for --[a-z-]+: expected a whole number/);
  }
});

Deno.test("a refused permission is reported as that permission on that queue, not as a wrong password", async () => {
  const queue = uniqueQueue("perm");
  const user = `permtest_${crypto.randomUUID().slice(0, 8)}`;
  const env = { AMQP_URL: brokerUrlWith({ username: user, password: SECRET }) };
  await using broker = await openBroker();
  await rabbitmqctl("add_user", user, SECRET);
  try {
    await publishWithId(queue, "waiting", "task-1");
    // Configure and write, but no read: the worker declares its queues, then may not consume.
    await rabbitmqctl("set_permissions", "-p", "/", user, ".*", ".*", "^$");
    const worker = await runScript("worker.ts", ["--queue", queue], { env });
    assert.equal(worker.code, 1, worker.stderr);
    assertOneLine(
      worker.stderr,
      new RegExp(
        `^Cannot consume "${queue}": access refused \\(403\\): user "${user}" may not read queue "${queue}" in vhost "/"$`,
      ),
    );
    // No configure: the producer may not declare the queue.
    await rabbitmqctl("set_permissions", "-p", "/", user, "^$", ".*", ".*");
    const producer = await runScript("new_task.ts", ["--queue", queue, "x"], { env });
    assert.equal(producer.code, 1, producer.stderr);
    assertOneLine(
      producer.stderr,
      new RegExp(
        `^Cannot declare queue "${queue}": access refused \\(403\\): user "${user}" may not configure queue "${queue}" in vhost "/"$`,
      ),
    );
    for (const result of [worker, producer]) {
      assert.ok(!(result.stdout + result.stderr).includes(SECRET), "no password");
    }
    assert.deepEqual(await queueCounts(queue), { ready: 1, unacked: 0, consumers: 0 });
  } finally {
    await rabbitmqctl("delete_user", user).catch(() => {});
    await broker.deleteQueues(queue, `${queue}.dead`);
  }
});

Deno.test("queue.ts stats sends the credentials of --management-url as its one Authorization header and never prints them", async () => {
  const queue = uniqueQueue("mgmt");
  await using broker = await openBroker();
  // A stand-in for the management API, to see what the command sends: it answers only the
  // credentials of the URL, and only at a URL without them.
  const seen: { authorization: string | null; url: string }[] = [];
  const expected = `Basic ${btoa(`mgmt:${SECRET}`)}`;
  await using api = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    seen.push({ authorization: request.headers.get("authorization"), url: request.url });
    if (request.headers.get("authorization") !== expected) {
      return new Response("unauthorized", { status: 401 });
    }
    return Response.json({ items: [{ name: queue, messages_unacknowledged: 0 }] });
  });
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closedPort = (closed.addr as Deno.NetAddr).port;
  closed.close();
  try {
    await publishWithId(queue, "waiting", "task-1");
    const before = await queueCounts(queue);
    const silent = await runScript("queue.ts", [
      "stats",
      "--queue",
      queue,
      "--management-url",
      `http://mgmt:${SECRET}@127.0.0.1:${closedPort}`,
    ]);
    assert.equal(silent.code, 0, silent.stderr);
    assert.match(
      silent.stdout,
      new RegExp(`the management API at http://127\\.0\\.0\\.1:${closedPort}/ did not answer`),
    );
    const answered = await runScript("queue.ts", [
      "stats",
      "--queue",
      queue,
      "--json",
      "--management-url",
      `http://mgmt:${SECRET}@127.0.0.1:${api.addr.port}`,
    ]);
    assert.equal(answered.code, 0, answered.stderr);
    assert.equal(JSON.parse(answered.stdout).unacked, 0, "the API answered the URL's user");
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.authorization, expected, "one Authorization value: the URL's");
    assert.ok(!seen[0]!.url.includes(SECRET), "no credentials in the request's URL");
    for (const result of [silent, answered]) {
      assert.equal(result.stderr, "");
      assert.ok(!(result.stdout + result.stderr).includes(SECRET), "no password");
    }
    assert.deepEqual(await queueCounts(queue), before);
  } finally {
    await broker.deleteQueues(queue);
  }
});

Deno.test("--url-file and AMQP_URL_FILE read the broker URL from a file: the password is in no process's arguments or environment", async () => {
  const queue = uniqueQueue("urlfile");
  const user = `urlfile_${crypto.randomUUID().slice(0, 8)}`;
  const dir = await Deno.makeTempDir();
  const file = `${dir}/amqp_url`;
  await Deno.writeTextFile(file, `  ${brokerUrlWith({ username: user, password: SECRET })}\n`);
  // A URL that fails to log in: whenever it is used instead of the file, the test sees it.
  const wrong = brokerUrlWith({ username: "nobody", password: "wrong" });
  await using broker = await openBroker();
  await rabbitmqctl("add_user", user, SECRET);
  await rabbitmqctl("set_permissions", "-p", "/", user, ".*", ".*", ".*");
  const outputs: string[] = [];
  try {
    const flag = await runScript("new_task.ts", ["--url-file", file, "--queue", queue, "one"], {
      env: { AMQP_URL: wrong },
    });
    assert.equal(flag.code, 0, `--url-file wins over AMQP_URL: ${flag.stderr}`);
    const env = await runScript("new_task.ts", ["--queue", queue, "two"], {
      env: { AMQP_URL: "", AMQP_URL_FILE: file },
    });
    assert.equal(env.code, 0, env.stderr);
    outputs.push(flag.stdout, flag.stderr, env.stdout, env.stderr);
    assert.equal((await queueCounts(queue))?.ready, 2);
    await using worker = startScript(
      "worker.ts",
      ["--queue", queue, "--dot-ms", "0", "--max-tasks", "2"],
      { env: { AMQP_URL: "", AMQP_URL_FILE: file } },
    );
    await worker.waitForLines(/Waiting for messages/);
    for (const part of ["cmdline", "environ"]) {
      const text = await Deno.readTextFile(`/proc/${worker.pid}/${part}`);
      assert.ok(text.includes("AMQP_URL_FILE") || part === "cmdline", "the worker's own process");
      assert.ok(!text.includes(SECRET), `the password is not in the worker's ${part}`);
    }
    assert.equal((await worker.status()).code, 0, worker.transcript());
    assert.equal(worker.matching(/^ \[x\] Done$/).length, 2);
    outputs.push(...worker.stdout, ...worker.stderr);
    assert.deepEqual(await queueCounts(queue), { ready: 0, unacked: 0, consumers: 0 });
    const stats = await runScript("queue.ts", [
      "stats",
      "--url-file",
      file,
      "--queue",
      queue,
      "--management-url",
      "none",
    ], { env: { AMQP_URL: wrong } });
    assert.equal(stats.code, 0, stats.stderr);
    outputs.push(stats.stdout, stats.stderr);
    const refused: [string[], Record<string, string>, RegExp][] = [
      [["--url", wrong, "--url-file", file], {}, /^Give --url or --url-file, not both$/],
      [[], { AMQP_URL: wrong, AMQP_URL_FILE: file }, /^Set AMQP_URL or AMQP_URL_FILE, not both$/],
      [["--url-file", `${dir}/missing`], {}, /^Cannot read broker URL file ".*missing"/],
    ];
    for (const [args, env, message] of refused) {
      const result = await runScript("new_task.ts", [...args, "--queue", queue, "x"], { env });
      assert.equal(result.code, 2, result.stderr);
      assertOneLine(result.stderr, message);
      outputs.push(result.stdout, result.stderr);
    }
    assert.equal((await queueCounts(queue))?.ready, 0, "nothing sent by the refused commands");
    assert.ok(!outputs.join("\n").includes(SECRET), "no password in any output");
  } finally {
    await rabbitmqctl("delete_user", user).catch(() => {});
    await broker.deleteQueues(queue, `${queue}.dead`);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a worker whose stdout is closed (| head -1) stops as on SIGTERM: exit 0, no stack trace, every task it did acked", async () => {
  const queue = uniqueQueue("pipe");
  const out = await Deno.makeTempDir();
  await using broker = await openBroker();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...scriptPermissions("worker.ts"),
      "worker.ts",
      "--queue",
      queue,
      "--exec",
      'cat >> "$OUT/done"; echo >> "$OUT/done"',
    ],
    cwd: new URL("../", import.meta.url),
    env: { AMQP_URL: BROKER_URL, OUT: out },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  try {
    // What `| head -1` does: read the first line, then close the pipe.
    const reader = child.stdout.getReader();
    let first = "";
    while (!first.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      first += new TextDecoder().decode(value);
    }
    assert.match(first, /Waiting for messages/);
    await reader.cancel();
    await broker.publish(queue, "t1", "t2", "t3");
    const deadline = setTimeout(() => child.kill("SIGKILL"), DEADLINE_MS);
    // (If it is still running then, the assertion on its exit code fails.)
    const status = await child.status;
    clearTimeout(deadline);
    const errors = await stderr;
    assert.equal(status.code, 0, errors);
    assert.doesNotMatch(errors, /^\s+at |Uncaught|BrokenPipe/m, "no stack trace");
    assert.match(errors, /^Cannot write to stdout: it was closed; stopping/m);
    assert.ok(!errors.includes("amqp://guest:guest"), "no credentials");
    const done = (await Deno.readTextFile(`${out}/done`)).split("\n").filter((l) => l !== "");
    assert.ok(done.length >= 1, "the task in hand was finished");
    assert.equal(new Set(done).size, done.length, `no task done twice: ${done}`);
    await waitUntil(
      "the worker's consumer gone",
      async () => (await queueCounts(queue))?.consumers === 0,
    );
    assert.deepEqual(await queueCounts(queue), {
      ready: 3 - done.length,
      unacked: 0,
      consumers: 0,
    });
    // The tasks left were never handed back: the ones done were acked, the others not taken.
    const channel = await broker.connection.createChannel();
    const left: string[] = [];
    for (let message; (message = await channel.get(queue, { noAck: true }));) {
      assert.equal(message.fields.redelivered, false, "not redelivered");
      left.push(new TextDecoder().decode(message.content));
    }
    await channel.close();
    assert.deepEqual([...done, ...left].toSorted(), ["t1", "t2", "t3"]);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // It has exited.
    }
    await child.status;
    await stderr.catch(() => {});
    await broker.deleteQueues(queue, `${queue}.dead`);
    await Deno.remove(out, { recursive: true });
  }
});

/** Takes every message of `queue` off it, and returns their bodies in order. */
async function takeAll(broker: Broker, queue: string): Promise<Uint8Array[]> {
  const channel = await broker.connection.createChannel();
  const bodies: Uint8Array[] = [];
  try {
    for (let message; (message = await channel.get(queue, { noAck: true }));) {
      bodies.push(new Uint8Array(message.content));
    }
  } finally {
    await channel.close();
  }
  return bodies;
}

Deno.test("new_task --stdin sends each line's bytes exactly as they came: invalid UTF-8 and NUL included", async () => {
  const queue = uniqueQueue("bytes");
  await using broker = await openBroker();
  try {
    const input = new Uint8Array([
      ...[0x66, 0xff, 0xfe, 0x00, 0x61, 0x0d, 0x0a], // invalid UTF-8 and a NUL, then CRLF
      ...[0xc3, 0x28, 0x0a], // a cut two-byte sequence
      0x0a, // an empty line: skipped
      ...[0x20, 0x0a], // a space: a task
      ...[0xe2, 0x82], // a last line without a newline, a cut three-byte sequence
    ]);
    const result = await runScript("new_task.ts", ["--queue", queue, "--stdin"], {
      stdin: input,
    });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^ \[x\] Sent 4 tasks in/);
    assert.equal(result.stderr, "");
    assert.deepEqual(await queueCounts(queue), { ready: 4, unacked: 0, consumers: 0 });
    assert.deepEqual(await takeAll(broker, queue), [
      new Uint8Array([0x66, 0xff, 0xfe, 0x00, 0x61]),
      new Uint8Array([0xc3, 0x28]),
      new Uint8Array([0x20]),
      new Uint8Array([0xe2, 0x82]),
    ]);
  } finally {
    await broker.deleteQueues(queue);
  }
});

Deno.test("new_task --stdin refuses a line longer than 64 MiB: the lines before it sent and confirmed, nothing after", async () => {
  const queue = uniqueQueue("longline");
  await using broker = await openBroker();
  try {
    const long = new Uint8Array(64 * 1024 * 1024 + 1).fill(0x78);
    const input = new Uint8Array(4 + long.length + 3);
    input.set(new TextEncoder().encode("a\nb\n"));
    input.set(long, 4);
    input.set(new TextEncoder().encode("\nc\n"), 4 + long.length);
    const result = await runScript("new_task.ts", ["--queue", queue, "--stdin"], {
      stdin: input,
    });
    assert.equal(result.code, 1, result.stderr);
    assertOneLine(
      result.stderr,
      /^Line 3 of standard input is longer than 67108864 bytes \(64 MiB\)\. Confirmed 2 of 2 tasks published; the first 2 are all confirmed: re-send from task 3$/,
    );
    assert.deepEqual(await queueCounts(queue), { ready: 2, unacked: 0, consumers: 0 });
    const bodies = (await takeAll(broker, queue)).map((body) => new TextDecoder().decode(body));
    assert.deepEqual(bodies, ["a", "b"]);
    const first = await runScript("new_task.ts", ["--queue", queue, "--stdin"], { stdin: long });
    assert.equal(first.code, 1, first.stderr);
    assertOneLine(first.stderr, /^Line 1 of standard input is longer than .*: no task sent$/);
    assert.deepEqual(await queueCounts(queue), { ready: 0, unacked: 0, consumers: 0 });
  } finally {
    await broker.deleteQueues(queue);
  }
});

Deno.test("worker --metrics-port on a port in use: one line naming the port, exit 1, nothing taken", async () => {
  const queue = uniqueQueue("port");
  await using broker = await openBroker();
  using taken = Deno.listen({ hostname: "0.0.0.0", port: 0 });
  const port = (taken.addr as Deno.NetAddr).port;
  try {
    await publishWithId(queue, "waiting", "task-1");
    const before = await queueCounts(queue);
    const result = await runScript("worker.ts", ["--queue", queue, "--metrics-port", String(port)]);
    assert.equal(result.code, 1, result.stderr);
    assertOneLine(
      result.stderr,
      new RegExp(`^Cannot serve metrics on port ${port}: address in use$`),
    );
    assert.equal(result.stdout, "", "it did not start consuming");
    assert.ok(!(result.stdout + result.stderr).includes("guest:guest"), "no credentials");
    assert.deepEqual(await queueCounts(queue), before);
  } finally {
    await broker.deleteQueues(queue, `${queue}.dead`);
  }
});
