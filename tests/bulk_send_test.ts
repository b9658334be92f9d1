import assert from "node:assert/strict";
import { BROKER_URL, openBroker, runScript, scriptPermissions, uniqueQueue } from "./_helpers.ts";

const ROOT = new URL("../", import.meta.url);

/** `text` quoted for sh. */
function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

Deno.test("new_task.ts --stdin sends one task per non-empty line, in order, all confirmed", async () => {
  const queue = uniqueQueue("bulk");
  await using broker = await openBroker();
  try {
    const lines = Array.from({ length: 5000 }, (_, i) => `task-${i}`);
    const input = lines.join("\n").replace("task-10\n", "task-10\n\n\r\n") + "\n";
    const result = await runScript("new_task.ts", ["--stdin", "--queue", queue, "--window", "64"], {
      stdin: input,
    });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^ \[x\] Sent 5000 tasks in \d+\.\d s$/);
    assert.equal(await broker.ready(queue), 5000);
    const channel = await broker.connection.createChannel();
    for (const expected of lines.slice(0, 20)) {
      const message = await channel.get(queue, { noAck: true });
      assert.ok(message);
      assert.equal(message.content.toString(), expected);
      assert.equal(message.properties.deliveryMode, 2);
    }
    await channel.close();
  } finally {
    await broker.deleteQueues(queue);
  }
});

Deno.test("new_task.ts --stdin says how many tasks were confirmed when the broker refuses the rest", async () => {
  const queue = uniqueQueue("bulkfull");
  await using broker = await openBroker();
  const channel = await broker.connection.createChannel();
  await channel.assertQueue(queue, {
    durable: true,
    arguments: { "x-max-length": 100, "x-overflow": "reject-publish" },
  });
  await channel.close();
  try {
    const input = Array.from({ length: 150 }, (_, i) => `t${i}`).join("\n");
    const result = await runScript("new_task.ts", ["--stdin", "--queue", queue], { stdin: input });
    assert.equal(result.code, 1);
    assert.equal(result.stdout, "");
    assert.match(
      result.stderr.split("\n").at(-1)!,
      /^Task [0-9a-f-]+ was not sent: the broker refused it \(nack\)\. Confirmed 100 of 1[0-9]{2} tasks published; the first 100 are all confirmed: re-send from task 101$/,
    );
    assert.equal(await broker.ready(queue), 100);
  } finally {
    await broker.deleteQueues(queue);
  }
});

Deno.test("new_task.ts --stdin refuses empty input and a MESSAGE beside it, with exit 2", async () => {
  const empty = await runScript("new_task.ts", ["--stdin"], { stdin: "\n\n" });
  assert.equal(empty.code, 2);
  assert.equal(empty.stderr, "Empty input: no tasks on standard input");
  const both = await runScript("new_task.ts", ["--stdin", "hello"], { stdin: "x\n" });
  assert.equal(both.code, 2);
  assert.match(both.stderr, /^Give either MESSAGE or --stdin, not both/);
  const badWindow = await runScript("new_task.ts", ["--stdin", "--window", "0"], { stdin: "x\n" });
  assert.equal(badWindow.code, 2);
});

Deno.test("new_task.ts --stdin on a terminal shows a progress line on stderr, then clears it", async () => {
  const queue = uniqueQueue("tty");
  const count = 30_000;
  await using broker = await openBroker();
  const input = await Deno.makeTempFile({ prefix: "tasks_" });
  try {
    await Deno.writeTextFile(input, Array.from({ length: count }, (_, i) => `t${i}\n`).join(""));
    const command = [
      Deno.execPath(),
      "run",
      ...scriptPermissions("new_task.ts"),
      "new_task.ts",
      ...["--stdin", "--queue", queue],
    ].map(shellQuote).join(" ") + ` < ${shellQuote(input)}`;
    // script(1) runs the command on a pseudo-terminal, as a person at a terminal would.
    const { code, stdout } = await new Deno.Command("script", {
      args: ["-qec", command, "/dev/null"],
      cwd: ROOT,
      env: { AMQP_URL: BROKER_URL, NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(60_000),
    }).output();
    const terminal = new TextDecoder().decode(stdout);
    assert.equal(code, 0, terminal);
    assert.match(terminal, /\r {2}\d+ tasks confirmed \(\d+\/s\)/);
    assert.ok(terminal.includes("\r\x1b[K [x] Sent 30000 tasks in "), "cleared, then the summary");
    assert.equal(await broker.ready(queue), count);
  } finally {
    await Deno.remove(input);
    await broker.deleteQueues(queue);
  }
});
