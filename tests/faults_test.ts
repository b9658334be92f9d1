/**
 * Fault tests: real broker, real processes, real failures. Each compares the tasks the producer
 * saw confirmed with the tasks workers finished and prints lost / duplicated / total. Tests that
 * stop, reconfigure or disconnect the shared broker restore it in `finally`; deno test runs them
 * one at a time.
 */

import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import {
  atLeast,
  brokerAnswers,
  brokerVersion,
  rabbitmqctl,
  raiseMemoryAlarm,
  setBrokerSetting,
  startBroker,
  stopBroker,
} from "./_broker_admin.ts";
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
import { finishedTasks, reconcile } from "./_ledger.ts";
import type { QueueType } from "../mod.ts";

async function disposeAll(workers: Iterable<ScriptProcess>): Promise<void> {
  for (const worker of workers) await worker[Symbol.asyncDispose]();
}

async function deleteQueue(queue: string): Promise<void> {
  await using broker = await openBroker();
  await broker.deleteQueues(queue);
}

async function assertDrained(queue: string): Promise<void> {
  await waitUntil("0 ready and 0 unacked", async () => {
    const counts = await queueCounts(queue);
    return counts?.ready === 0 && counts.unacked === 0;
  });
}

Deno.test("workers killed with SIGKILL at random and restarted lose no task", async () => {
  const queue = uniqueQueue("chaos");
  const everyWorker: ScriptProcess[] = [];
  const live: ScriptProcess[] = [];
  const spawn = async () => {
    const worker = await startWorker(queue, ["--dot-ms", "20"]);
    everyWorker.push(worker);
    live.push(worker);
  };
  try {
    await using broker = await openBroker();
    for (let i = 0; i < 3; i++) await spawn();
    const confirmed: string[] = [];
    for (let batch = 0; batch < 6; batch++) {
      const bodies = Array.from({ length: 50 }, (_, i) => `chaos-${batch * 50 + i}.`);
      await broker.publish(queue, ...bodies);
      confirmed.push(...bodies);
      // Kill one worker mid-stream and start a fresh one in its place.
      await sleep(20 + Math.random() * 60);
      const victim = live.splice(Math.floor(Math.random() * live.length), 1)[0]!;
      victim.kill("SIGKILL");
      await victim.status();
      await spawn();
    }
    await waitUntil("every confirmed task finished", () => {
      const done = new Set(finishedTasks(everyWorker));
      return confirmed.every((body) => done.has(body));
    }, 60_000);
    const report = reconcile("SIGKILL chaos", confirmed, finishedTasks(everyWorker));
    assert.deepEqual(report.lost, []);
    await assertDrained(queue);
  } finally {
    await disposeAll(everyWorker);
    await deleteQueue(queue);
  }
});

Deno.test("a broker restart while producing and consuming loses no confirmed task, and the same workers carry on", async () => {
  const queue = uniqueQueue("restart");
  const workers: ScriptProcess[] = [];
  let producing = true;
  const confirmed: string[] = [];
  let failedSends = 0;
  const producer = (async () => {
    for (let i = 0; producing; i++) {
      const body = `restart-${i}.`;
      const sent = await runScript("new_task.ts", ["--queue", queue, body]);
      if (sent.code === 0) confirmed.push(body);
      else failedSends++;
    }
  })();
  try {
    workers.push(await startWorker(queue, ["--dot-ms", "5"]));
    workers.push(await startWorker(queue, ["--dot-ms", "5"]));
    await waitUntil("tasks before the restart", () => confirmed.length >= 5);
    await stopBroker();
    await waitUntil("a send to fail while the broker is down", () => failedSends >= 1);
    await startBroker();
    const afterRestart = confirmed.length;
    await waitUntil("tasks after the restart", () => confirmed.length >= afterRestart + 5, 60_000);
    producing = false;
    await producer;
    await waitUntil("every confirmed task finished", () => {
      const done = new Set(finishedTasks(workers));
      return confirmed.every((body) => done.has(body));
    }, 60_000);
    const report = reconcile("broker restart", confirmed, finishedTasks(workers));
    assert.deepEqual(report.lost, []);
    for (const worker of workers) {
      await waitUntil(
        `the worker to reconnect by itself: ${worker.transcript()}`,
        () => worker.stderr.some((line) => /^Reconnected to .*; consuming again$/.test(line)),
        30_000,
      );
    }
    await assertDrained(queue);
  } finally {
    producing = false;
    await producer;
    if (!(await brokerAnswers())) await startBroker();
    await disposeAll(workers);
    await deleteQueue(queue);
  }
});

Deno.test("workers whose connections the broker force-closes resume within a few seconds", async () => {
  const queue = uniqueQueue("closed");
  const workers: ScriptProcess[] = [];
  try {
    workers.push(await startWorker(queue, ["--dot-ms", "5"]));
    workers.push(await startWorker(queue, ["--dot-ms", "5"]));
    await rabbitmqctl("close_all_connections", "fault test: forced close");
    for (const worker of workers) {
      await waitUntil(
        "the worker to reconnect",
        () => worker.stderr.some((line) => /^Reconnected to .*; consuming again$/.test(line)),
        5_000,
      );
    }
    await using broker = await openBroker();
    const bodies = ["after-close-1.", "after-close-2.", "after-close-3.", "after-close-4."];
    await broker.publish(queue, ...bodies);
    await waitUntil("the tasks done", () => finishedTasks(workers).length === 4, 5_000);
    assert.deepEqual(reconcile("forced close", bodies, finishedTasks(workers)).lost, []);
  } finally {
    await disposeAll(workers);
    await deleteQueue(queue);
  }
});

Deno.test("a worker whose queue is deleted declares it again and goes on consuming", async () => {
  const queue = uniqueQueue("deleted");
  try {
    await using worker = await startWorker(queue, ["--dot-ms", "5"]);
    await using broker = await openBroker();
    await broker.deleteQueues(queue);
    await waitUntil(
      "the cancel to be noticed",
      () =>
        worker.stderr.some((line) => /cancelled the consumer \(the queue was deleted/.test(line)),
    );
    await waitUntil(
      "the worker to consume again",
      async () => (await queueCounts(queue))?.consumers === 1,
    );
    await broker.publish(queue, "Still here.");
    await worker.waitForLines(/^ \[x\] Done$/);
  } finally {
    await deleteQueue(queue);
  }
});

Deno.test("while the broker blocks publishers the producer waits, says so once, then completes", async () => {
  const queue = uniqueQueue("alarm");
  let clear: (() => Promise<void>) | undefined;
  try {
    await using broker = await openBroker();
    clear = await raiseMemoryAlarm();
    await using producer = startScript("new_task.ts", [
      "--queue",
      queue,
      "--confirm-timeout",
      "1000",
      "Blocked.",
    ]);
    await waitUntil(
      "the blocked notice",
      () => producer.stderr.some((line) => /blocking publishers/.test(line)),
      10_000,
    );
    // Longer than --confirm-timeout: a blocked broker must not turn into a failed send.
    await sleep(1500);
    assert.deepEqual(producer.stdout, [], "not reported as sent while blocked");
    await clear();
    clear = undefined;
    const status = await producer.status();
    assert.equal(status.code, 0, producer.transcript());
    assert.deepEqual(producer.stdout, [" [x] Sent 'Blocked.'"]);
    assert.equal(producer.stderr.filter((line) => /blocking publishers/.test(line)).length, 1);
    assert.equal(await broker.ready(queue), 1);
  } finally {
    await clear?.();
    await deleteQueue(queue);
  }
});

/**
 * Makes the broker's consumer ack timeout 1 s for `fn`, and restores it. The broker reads it when
 * a channel opens (and before RabbitMQ 4.3 checks it on the channel's tick, made short here too);
 * from 4.3, when a consumer starts.
 */
async function withShortAckTimeout(
  fn: (undo: () => Promise<void>) => Promise<void>,
): Promise<void> {
  const restore: Array<() => Promise<void>> = [];
  const undoAll = async () => {
    for (const undo of restore.splice(0).reverse()) await undo();
  };
  try {
    restore.push(await setBrokerSetting("channel_tick_interval", "500"));
    restore.push(await setBrokerSetting("consumer_timeout", "1000"));
    await fn(undoAll);
  } finally {
    await undoAll();
  }
}

// The ack timeout of RabbitMQ before 4.3 closes the channel of a late task, whatever its queue's
// type. From 4.3 it applies to quorum queues only, and cancels the consumer instead (for clients
// that understand consumer cancel notifications, as amqplib does). Either way the worker gets a
// new channel and consumer, and the task, taken back, is redelivered and finished.
for (const queueType of ["classic", "quorum"] as const) {
  Deno.test(`the broker's ack timeout on a ${queueType} queue closes the channel before RabbitMQ 4.3 and cancels the consumer from 4.3 (quorum queues only); the worker carries on and the task is finished`, async () => {
    const queue = uniqueQueue(`acktimeout_${queueType}`);
    const version = await brokerVersion();
    const channelClosed = !atLeast(version, 4, 3);
    const timesOut = channelClosed || queueType === "quorum";
    try {
      await withShortAckTimeout(async (undo) => {
        await using worker = await startWorker(queue, [
          "--queue-type",
          queueType,
          "--dot-ms",
          "200",
        ]);
        await using broker = await openBroker();
        await broker.publish(queue, "Slow..........");
        if (!timesOut) {
          // RabbitMQ 4.3 and later: no timeout on a classic queue; the task runs its 2 s, once.
          await worker.waitForLines(/^ \[x\] Done$/, 1, 10_000);
          assert.deepEqual(worker.matching(/Received/), [" [x] Received 'Slow..........'"]);
          assert.deepEqual(worker.stderr, [], worker.transcript());
          return;
        }
        const takenBack = channelClosed
          ? /^The broker closed the channel \(.*timed out.*\); opening a new one$/
          : /^The broker cancelled the consumer \(.*outlasted the broker's consumer_timeout\)/;
        await waitUntil(
          `the broker to take the task back (${version.join(".")}): ${worker.transcript()}`,
          () => worker.stderr.some((line) => takenBack.test(line)),
          10_000,
        );
        await undo();
        await waitUntil("the task finished on a new channel and acked", async () => {
          const counts = await queueCounts(queue);
          return counts?.ready === 0 && counts.unacked === 0 &&
            worker.matching(/^ \[x\] Done$/).length >= 2;
        }, 20_000);
        assert.ok(
          worker.stderr.some((line) => /finished after its channel was lost/.test(line)),
          worker.transcript(),
        );
      });
    } finally {
      await deleteQueue(queue);
      await deleteQueue(`${queue}.dead`);
    }
  });
}

Deno.test("a bulk send waits out a blocked broker too, then every task is confirmed", async () => {
  const queue = uniqueQueue("bulkalarm");
  let clear: (() => Promise<void>) | undefined;
  try {
    await using broker = await openBroker();
    clear = await raiseMemoryAlarm();
    const input = Array.from({ length: 500 }, (_, i) => `blocked-${i}`).join("\n");
    await using producer = startScript(
      "new_task.ts",
      ["--stdin", "--queue", queue, "--confirm-timeout", "1000"],
      { stdin: input },
    );
    await waitUntil(
      "the blocked notice",
      () => producer.stderr.some((line) => /blocking publishers/.test(line)),
      10_000,
    );
    // Longer than --confirm-timeout: the window's watchdog must not count blocked time.
    await sleep(1500);
    assert.deepEqual(producer.stdout, []);
    await clear();
    clear = undefined;
    assert.equal((await producer.status()).code, 0, producer.transcript());
    assert.match(producer.stdout.join("\n"), /^ \[x\] Sent 500 tasks in /);
    assert.equal(await broker.ready(queue), 500);
  } finally {
    await clear?.();
    await deleteQueue(queue);
  }
});

for (const type of ["classic", "quorum"] as const satisfies readonly QueueType[]) {
  Deno.test(`${type}: delayed tasks survive stop_app/start_app: one due while the broker is down and one due after both arrive, neither early`, async () => {
    const queue = uniqueQueue(`delayrestart_${type}`);
    const out = await Deno.makeTempDir();
    const args = ["--queue", queue, "--queue-type", type];
    try {
      await using worker = startScript("worker.ts", [
        ...args,
        "--exec",
        'echo "$(cat) $(date +%s%3N)" >> "$OUT/log"',
      ], { env: { OUT: out } });
      await worker.waitForLines(/Waiting for messages/);
      const due: Record<string, number> = {};
      for (const [body, delay] of [["during", "3s"], ["after", "12s"]]) {
        const sent = await runScript("new_task.ts", [...args, "--delay", delay!, body!]);
        assert.equal(sent.code, 0, sent.stderr);
        due[body!] = Date.parse(/due at (\S+)$/.exec(sent.stdout)![1]!);
      }
      await stopBroker();
      try {
        // The broker stays down until the first task's time has come and gone.
        await waitUntil("the first task's due time to pass", () => Date.now() > due.during! + 1000);
      } finally {
        await startBroker();
      }
      const arrivals = async () => {
        const text = await Deno.readTextFile(`${out}/log`).catch(() => "");
        return new Map(
          text.trim().split("\n").filter(Boolean).map((line) => {
            const [body, at] = line.split(" ");
            return [body!, Number(at)] as const;
          }),
        );
      };
      await waitUntil("both delayed tasks done", async () => (await arrivals()).size === 2, 60_000);
      const arrived = await arrivals();
      for (const body of ["during", "after"]) {
        assert.ok(
          arrived.get(body)! >= due[body]!,
          `${body} came ${due[body]! - arrived.get(body)!} ms early (due ${
            new Date(due[body]!).toISOString()
          }): ${worker.transcript()}`,
        );
      }
      assert.ok(
        arrived.get("after")! - due.after! < 5000,
        `"after" came ${arrived.get("after")! - due.after!} ms late`,
      );
    } finally {
      if (!(await brokerAnswers())) await startBroker();
      await using broker = await openBroker();
      await broker.deleteTaskQueues(queue);
      await Deno.remove(out, { recursive: true });
    }
  });
}
