import assert from "node:assert/strict";
import { openBroker, runScript, uniqueQueue } from "./_helpers.ts";

Deno.test("new_task.ts sends the joined arguments as one persistent task and prints the tutorial line", async () => {
  const queue = uniqueQueue("send");
  await using broker = await openBroker();
  try {
    const result = await runScript("new_task.ts", ["--queue", queue, "First", "message."]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.trim(), " [x] Sent 'First message.'".trim());
    const channel = await broker.connection.createChannel();
    const message = await channel.get(queue, { noAck: true });
    await channel.close();
    assert.ok(message, "the task is in the queue once the producer has exited");
    assert.equal(message.content.toString(), "First message.");
    assert.equal(message.properties.deliveryMode, 2, "persistent");
    assert.match(String(message.properties.messageId), /^[0-9a-f-]{36}$/);
  } finally {
    await broker.deleteQueues(queue);
  }
});

Deno.test('new_task.ts sends "Hello World!" when given no message', async () => {
  const queue = uniqueQueue("hello");
  await using broker = await openBroker();
  try {
    const result = await runScript("new_task.ts", ["--queue", queue]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, " [x] Sent 'Hello World!'");
    assert.equal(await broker.ready(queue), 1);
  } finally {
    await broker.deleteQueues(queue);
  }
});

Deno.test("new_task.ts uses a queue that exists with other arguments instead of failing", async () => {
  const queue = uniqueQueue("foreign");
  await using broker = await openBroker();
  const channel = await broker.connection.createChannel();
  await channel.assertQueue(queue, { durable: true, arguments: { "x-max-priority": 5 } });
  await channel.close();
  try {
    const result = await runScript("new_task.ts", ["--queue", queue, "task"]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /exists with other arguments; using it as it is/);
    assert.equal(await broker.ready(queue), 1);
  } finally {
    await broker.deleteQueues(queue);
  }
});

Deno.test("new_task.ts exits 1 with one line naming the address, without the password, when the broker is down", async () => {
  const result = await runScript("new_task.ts", ["task"], {
    env: { AMQP_URL: "amqp://alice:s3cret@127.0.0.1:1/" },
  });
  assert.equal(result.code, 1);
  assert.equal(result.stderr, `Cannot connect to "amqp://127.0.0.1:1": connection refused`);
  assert.equal(result.stdout, "");
  assert.doesNotMatch(result.stderr + result.stdout, /s3cret|alice/);
});

Deno.test("new_task.ts exits 2 with usage for an unknown flag, a bad value or a malformed URL", async () => {
  for (
    const [args, message] of [
      [["--nope"], /Unknown option '--nope'/],
      [["--confirm-timeout", "soon"], /Invalid value "soon" for --confirm-timeout/],
      [["--url", "http://localhost"], /scheme must be amqp:\/\/ or amqps:\/\//],
      [["--queue", ""], /--queue: must not be empty/],
    ] as const
  ) {
    const result = await runScript("new_task.ts", [...args]);
    assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
    assert.match(result.stderr, message);
    assert.match(result.stderr, /Usage: deno task send/);
    assert.doesNotMatch(result.stderr, /^\s+at /m, "no stack trace");
  }
});

Deno.test("new_task.ts --help prints every flag and exits 0", async () => {
  const result = await runScript("new_task.ts", ["--help"]);
  assert.equal(result.code, 0);
  for (const flag of ["--url", "--queue", "--confirm-timeout", "--help"]) {
    assert.ok(result.stdout.includes(flag), flag);
  }
});

/**
 * The project's modules in the graph of `entry`, as `deno info` sees it: with `dynamic`, also
 * those a literal `import("...")` names (Deno reads and hashes all of them before the first line
 * runs); without, only those its static imports load.
 */
async function moduleGraph(entry: string, dynamic: boolean): Promise<string[]> {
  const { stdout } = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: new URL("../", import.meta.url),
  }).output();
  type Dependency = { code?: { specifier: string }; isDynamic?: boolean };
  const { modules } = JSON.parse(new TextDecoder().decode(stdout)) as {
    modules: { specifier: string; dependencies?: Dependency[] }[];
  };
  const bySpecifier = new Map(modules.map((module) => [module.specifier, module]));
  const root = new URL(`../${entry}`, import.meta.url).href;
  const seen = new Set<string>([root]);
  for (const specifier of seen) {
    for (const dependency of bySpecifier.get(specifier)?.dependencies ?? []) {
      if (dependency.code && (dynamic || !dependency.isDynamic)) {
        seen.add(dependency.code.specifier);
      }
    }
  }
  const base = new URL("../", import.meta.url).href;
  return [...seen].filter((url) => url.startsWith(base)).map((url) => url.slice(base.length));
}

/** What only --stdin, --wait or a worker uses. */
function sendersAndWorkers(path: string): boolean {
  return path === "mod.ts" || path.startsWith("lib/consume/") || path.startsWith("lib/observe/") ||
    path.startsWith("commands/") || path.startsWith("lib/client/") ||
    [
      "lib/produce/producer.ts",
      "lib/produce/bulk_send.ts",
      "lib/produce/outcomes.ts",
      "lib/io/read_lines.ts",
    ].includes(path);
}

Deno.test("new_task.ts loads nothing for one task that only --stdin, --wait, a delay, --help, an odd queue or a worker uses", async () => {
  const loaded = await moduleGraph("new_task.ts", false);
  assert.ok(loaded.includes("lib/produce/publisher.ts"), loaded.join("\n"));
  const unused = loaded.filter((path) =>
    sendersAndWorkers(path) ||
    [
      "lib/topology/delay_levels.ts",
      "lib/topology/existing_queue.ts",
      "lib/cli/duration.ts",
      "lib/cli/help.ts",
    ].includes(path)
  );
  assert.deepEqual(unused, [], `loaded before they are needed:\n${unused.join("\n")}`);
});

Deno.test("new_task.ts does not have Deno read the code of --stdin and --wait before it runs", async () => {
  const prepared = await moduleGraph("new_task.ts", true);
  assert.ok(prepared.includes("lib/topology/existing_queue.ts"), prepared.join("\n"));
  const unused = prepared.filter(sendersAndWorkers);
  assert.deepEqual(unused, [], `read before they are needed:\n${unused.join("\n")}`);
});
