/**
 * What an --exec command leaves behind never holds up the worker: a process that keeps the pipes
 * open does not keep the task unacked, and a forced exit takes the commands with it.
 */

import assert from "node:assert/strict";
import { openBroker, startScript, uniqueQueue, waitUntil } from "./_helpers.ts";

/** Whether a process whose command line contains `pattern` runs. */
async function running(pattern: string): Promise<boolean> {
  const { code } = await new Deno.Command("pgrep", { args: ["-f", pattern] }).output();
  return code === 0;
}

async function killAll(pattern: string): Promise<void> {
  await new Deno.Command("pkill", { args: ["-f", pattern] }).output();
}

Deno.test("a process an --exec command leaves holding its pipes does not keep the task from being done and acked", async () => {
  const queue = uniqueQueue("setsid");
  const marker = `sleep 3${Math.floor(Math.random() * 9000 + 1000)}`;
  await using broker = await openBroker();
  try {
    const started = performance.now();
    await using worker = startScript("worker.ts", [
      "--queue",
      queue,
      "--max-tasks",
      "2",
      "--exec",
      `setsid ${marker} & echo started`,
    ]);
    await worker.waitForLines(/Waiting for messages/);
    await broker.publish(queue, "one", "two");
    const status = await worker.status();
    const seconds = (performance.now() - started) / 1000;
    assert.equal(status.code, 0, worker.stderr.join("\n"));
    assert.equal(worker.matching(/^ \[x\] Done$/).length, 2);
    assert.ok(seconds < 15, `took ${seconds.toFixed(1)} s`);
    assert.equal(await broker.ready(queue), 0);
  } finally {
    await killAll(marker);
    await broker.deleteQueues(queue, `${queue}.dead`);
  }
});

Deno.test("a try past --task-timeout ends even when the command's leftovers hold its pipes; the worker takes the next task", async () => {
  const queue = uniqueQueue("setsidtimeout");
  const marker = `sleep 4${Math.floor(Math.random() * 9000 + 1000)}`;
  await using broker = await openBroker();
  try {
    await using worker = startScript("worker.ts", [
      "--queue",
      queue,
      "--task-timeout",
      "500",
      "--max-retries",
      "0",
      "--exec",
      `if [ "$(cat)" = hang ]; then setsid ${marker} & sleep 60; fi`,
    ]);
    await worker.waitForLines(/Waiting for messages/);
    await broker.publish(queue, "hang", "quick");
    await worker.waitForLines(/^ \[x\] Done$/, 1, 15_000);
    assert.match(worker.stderr.join("\n"), /timeout after 500 ms.*parked in/);
    worker.kill("SIGTERM");
    assert.equal((await worker.status()).code, 0, worker.stderr.join("\n"));
  } finally {
    await killAll(marker);
    await broker.deleteQueues(queue, `${queue}.dead`);
  }
});

Deno.test("a forced exit (--shutdown-timeout passed) kills the --exec commands still running", async () => {
  const queue = uniqueQueue("forced");
  const marker = `sleep 5${Math.floor(Math.random() * 9000 + 1000)}`;
  await using broker = await openBroker();
  try {
    await using worker = startScript("worker.ts", [
      "--queue",
      queue,
      "--shutdown-timeout",
      "300",
      "--exec",
      marker,
    ]);
    await worker.waitForLines(/Waiting for messages/);
    await broker.publish(queue, "long");
    await waitUntil("the command runs", () => running(marker));
    worker.kill("SIGTERM");
    assert.equal((await worker.status()).code, 130);
    await waitUntil("the command is gone", async () => !(await running(marker)), 5000);
    await waitUntil("the task is back", async () => await broker.ready(queue) === 1);
  } finally {
    await killAll(marker);
    await broker.deleteQueues(queue, `${queue}.dead`);
  }
});

// Fields 5 and 6 of /proc/<pid>/stat are the process group and the session: read with shell
// builtins only, so that the command needs nothing from PATH.
const SHOW_GROUP = 'read -r stat < /proc/$$/stat; set -- $stat; echo "pid $1 group $5 session $6"';

for (const setsid of [true, false]) {
  Deno.test(`an --exec command runs in a session and process group of its own (${setsid ? "with" : "without"} setsid(1) on PATH)`, async () => {
    const queue = uniqueQueue("session");
    // Without setsid(1) the worker falls back to Deno's detached spawn: PATH then holds sh alone.
    const bin = setsid ? undefined : await Deno.makeTempDir({ prefix: "only_sh_" });
    if (bin) await Deno.symlink("/bin/sh", `${bin}/sh`);
    await using broker = await openBroker();
    try {
      await using worker = startScript(
        "worker.ts",
        ["--queue", queue, "--max-tasks", "1", "--exec", SHOW_GROUP],
        bin ? { env: { PATH: bin } } : {},
      );
      await worker.waitForLines(/Waiting for messages/);
      await broker.publish(queue, "who am i");
      assert.equal((await worker.status()).code, 0, worker.stderr.join("\n"));
      const [line] = worker.matching(/ pid \d+ group \d+ session \d+$/);
      const [, pid, group, session] = / pid (\d+) group (\d+) session (\d+)$/.exec(line ?? "") ??
        [];
      assert.ok(pid, worker.stdout.join("\n"));
      assert.equal(group, pid, "the command leads its own process group");
      assert.equal(session, pid, "and its own session");
      assert.notEqual(Number(pid), worker.pid);
    } finally {
      if (bin) await Deno.remove(bin, { recursive: true });
      await broker.deleteQueues(queue, `${queue}.dead`);
    }
  });
}
