import assert from "node:assert/strict";
import { withBrokerSetting } from "./_broker_admin.ts";
import { displayUrl } from "../lib/broker/url.ts";
import { brokerUrlWith, openBroker, runScript, uniqueQueue } from "./_helpers.ts";

/** `text` matched literally inside a RegExp. */
function literal(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

// Each bad input: one line on stderr, a documented exit code, no stack trace, no password.
async function assertOneLine(
  args: string[],
  env: Record<string, string>,
  code: number,
  line: RegExp,
): Promise<void> {
  const result = await runScript("new_task.ts", args, { env });
  assert.equal(result.code, code, result.stderr);
  const lines = result.stderr.split("\n");
  assert.match(lines[0]!, line);
  assert.equal(
    lines.length,
    code === 2 ? 2 : 1,
    `one line (plus usage for exit 2): ${result.stderr}`,
  );
  assert.doesNotMatch(result.stderr + result.stdout, /s3cret|^\s+at /m);
  assert.equal(result.stdout, "", "nothing reported as sent");
}

Deno.test("new_task.ts reports an unknown host in one line and exits 1", async () => {
  await assertOneLine(
    ["x"],
    { AMQP_URL: "amqp://u:s3cret@no-such-host.invalid" },
    1,
    /^Cannot connect to "amqp:\/\/no-such-host\.invalid:5672": unknown host "no-such-host\.invalid"$/,
  );
});

Deno.test("new_task.ts reports wrong credentials (403) without printing them, and exits 1", async () => {
  const url = brokerUrlWith({ password: "s3cret" });
  await assertOneLine(
    ["x"],
    { AMQP_URL: url },
    1,
    new RegExp(
      `^Cannot connect to "${
        literal(displayUrl(url))
      }": access refused \\(403\\): wrong user name or password$`,
    ),
  );
});

Deno.test("new_task.ts reports an unknown vhost and exits 1", async () => {
  const url = brokerUrlWith({ vhost: "no_such_vhost" });
  await assertOneLine(
    ["x"],
    { AMQP_URL: url },
    1,
    new RegExp(`^Cannot connect to "${literal(displayUrl(url))}": .*vhost "no_such_vhost" exist`),
  );
});

Deno.test("new_task.ts rejects a malformed URL, a negative timeout and an empty message with exit 2", async () => {
  await assertOneLine(["x"], { AMQP_URL: "amqp://" }, 2, /^Invalid broker URL/);
  await assertOneLine(["x"], { AMQP_URL: "rabbit:5672" }, 2, /^Invalid broker URL "rabbit:5672"/);
  await assertOneLine(["--confirm-timeout", "-5", "x"], {}, 2, /--confirm-timeout/);
  await assertOneLine(["--heartbeat", "x1", "x"], {}, 2, /^Invalid value "x1" for --heartbeat/);
  await assertOneLine([""], {}, 2, /^Empty message: nothing to send$/);
});

Deno.test("new_task.ts reports a task larger than the broker accepts as not sent, exit 1", async () => {
  const queue = uniqueQueue("big");
  await using broker = await openBroker();
  try {
    await withBrokerSetting("max_message_size", "1024", async () => {
      await assertOneLine(
        ["--queue", queue, "x".repeat(2000)],
        {},
        1,
        /^Task [0-9a-f-]+ was not sent: the broker closed the channel: PRECONDITION_FAILED - message size 2000 is larger than configured max size 1024$/,
      );
    });
    assert.equal(await broker.ready(queue), 0);
  } finally {
    await broker.deleteQueues(queue);
  }
});
