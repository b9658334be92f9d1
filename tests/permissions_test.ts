import assert from "node:assert/strict";
import { rabbitmqctl } from "./_broker_admin.ts";
import { brokerUrlWith, openBroker, runScript, startScript, uniqueQueue } from "./_helpers.ts";

const README = Deno.readTextFileSync(new URL("../README.md", import.meta.url));

/** The README's `set_permissions` lines: user -> [configure, write, read]. */
function readmePermissions(): Map<string, [string, string, string]> {
  const found = new Map<string, [string, string, string]>();
  for (
    const m of README.matchAll(/rabbitmqctl set_permissions -p \/ (\w+) '(.*?)' '(.*?)' '(.*?)'/g)
  ) {
    found.set(m[1]!, [m[2]!, m[3]!, m[4]!]);
  }
  return found;
}

Deno.test("the README's least-privilege users can send, delay, work and retry tasks, and nothing more", async () => {
  const permissions = readmePermissions();
  assert.deepEqual([...permissions.keys()], ["producer", "worker"]);
  const queue = uniqueQueue("perm");
  const suffix = crypto.randomUUID().slice(0, 8);
  const users = { producer: `producer_${suffix}`, worker: `worker_${suffix}` };
  const password = crypto.randomUUID();
  await using broker = await openBroker();
  try {
    for (const [role, user] of Object.entries(users)) {
      await rabbitmqctl("add_user", user, password);
      const [configure, write, read] = permissions.get(role)!.map((re) =>
        re.replaceAll("task_queue", queue)
      );
      await rabbitmqctl("set_permissions", "-p", "/", user, configure!, write!, read!);
    }
    const as = (user: string) => ({ AMQP_URL: brokerUrlWith({ username: user, password }) });
    const sent = await runScript("new_task.ts", ["--queue", queue, "Allowed."], {
      env: as(users.producer),
    });
    assert.equal(sent.code, 0, sent.stderr);
    const delayed = await runScript(
      "new_task.ts",
      ["--queue", queue, "--delay", "200ms", "Later."],
      {
        env: as(users.producer),
      },
    );
    assert.equal(delayed.code, 0, delayed.stderr);
    // Every first try fails: each task is retried through the delay levels, as the worker.
    await using worker = startScript("worker.ts", [
      "--queue",
      queue,
      "--retry-delay",
      "50",
      "--exec",
      '[ "$TASK_ATTEMPT" -gt 1 ]',
    ], { env: as(users.worker) });
    await worker.waitForLines(/^ \[x\] Done$/, 2);
    assert.equal(worker.stderr.filter((line) => /attempt 1 of 4; retrying/.test(line)).length, 2);
    worker.kill("SIGINT");
    assert.equal((await worker.status()).code, 0);
    const elsewhere = await runScript("new_task.ts", ["--queue", `${queue}_other`, "x"], {
      env: as(users.producer),
    });
    assert.equal(elsewhere.code, 1, "the producer may not declare other queues");
    assert.match(
      elsewhere.stderr,
      /access refused \(403\): user "producer_\w+" may not configure queue/,
    );
    assert.doesNotMatch(elsewhere.stderr, new RegExp(password));
  } finally {
    for (const user of Object.values(users)) await rabbitmqctl("delete_user", user).catch(() => {});
    await broker.deleteQueues(queue);
  }
});
