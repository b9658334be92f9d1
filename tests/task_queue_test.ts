import assert from "node:assert/strict";
import { DEFAULT_QUEUE, type QueueType, TaskQueue } from "../lib/topology/task_queue.ts";

Deno.test("TaskQueue defaults to the tutorial's classic task_queue, 3 retries from 1 s", () => {
  const queue = new TaskQueue();
  assert.equal(queue.name, DEFAULT_QUEUE);
  assert.equal(queue.name, "task_queue");
  assert.equal(queue.type, "classic");
  assert.equal(queue.maxRetries, 3);
  assert.equal(queue.maxTries, 4);
  assert.equal(queue.retryDelay, 1000);
  assert.equal(queue.maxRetryDelay, 600_000);
  assert.equal(String(queue), "task_queue");
});

Deno.test("TaskQueue.retrySchedule doubles the delay for each retry, capped at maxRetryDelay", () => {
  assert.deepEqual(new TaskQueue("q").retrySchedule, [1000, 2000, 4000]);
  assert.deepEqual(
    new TaskQueue("q", { maxRetries: 12 }).retrySchedule,
    [1000, 2000, 4000, 8000, 16_000, 32_000, 64_000, 128_000, 256_000, 512_000, 600_000, 600_000],
  );
  assert.deepEqual(
    new TaskQueue("q", { maxRetries: 5, retryDelay: 300, maxRetryDelay: 1000 }).retrySchedule,
    [300, 600, 1000, 1000, 1000],
  );
  assert.deepEqual(new TaskQueue("q", { maxRetries: 0 }).retrySchedule, []);
});

Deno.test("TaskQueue.retryDelayAfter() gives the wait after a failed try and rejects non-attempts", () => {
  const queue = new TaskQueue("q", { retryDelay: 500, maxRetryDelay: 3000 });
  assert.equal(queue.retryDelayAfter(1), 500);
  assert.equal(queue.retryDelayAfter(2), 1000);
  assert.equal(queue.retryDelayAfter(3), 2000);
  assert.equal(queue.retryDelayAfter(4), 3000);
  // Past the schedule (a task from a worker with more retries), and past 2 ** 1024.
  assert.equal(queue.retryDelayAfter(50), 3000);
  assert.equal(queue.retryDelayAfter(5000), 3000);
  for (const attempt of [0, -1, 1.5, Number.NaN, Infinity]) {
    assert.throws(
      () => queue.retryDelayAfter(attempt),
      {
        name: "RangeError",
        message: `Invalid attempt "${attempt}": expected a whole number of at least 1`,
      },
    );
  }
});

Deno.test("TaskQueue.retryQueues names one queue per distinct delay, shortest first", () => {
  assert.deepEqual(new TaskQueue("jobs").retryQueues, [
    "jobs.retry.1000ms",
    "jobs.retry.2000ms",
    "jobs.retry.4000ms",
  ]);
  assert.deepEqual(
    new TaskQueue("jobs", { maxRetries: 6, retryDelay: 1000, maxRetryDelay: 4000 }).retryQueues,
    ["jobs.retry.1000ms", "jobs.retry.2000ms", "jobs.retry.4000ms"],
  );
  assert.deepEqual(new TaskQueue("jobs", { maxRetries: 0 }).retryQueues, []);
  assert.equal(new TaskQueue("jobs").retryQueue(250), "jobs.retry.250ms");
});

Deno.test("TaskQueue.deadQueue is <name>.dead", () => {
  assert.equal(new TaskQueue().deadQueue, "task_queue.dead");
  assert.equal(new TaskQueue("images", { type: "quorum" }).deadQueue, "images.dead");
});

Deno.test("TaskQueue.retryDelayOf() reads the delay of the queue's own retry queues only", () => {
  const queue = new TaskQueue("jobs");
  for (const name of queue.retryQueues) {
    assert.equal(queue.retryQueue(queue.retryDelayOf(name)!), name);
  }
  assert.equal(queue.retryDelayOf("jobs.retry.4000ms"), 4000);
  // A retry queue of another policy on the same queue (a worker run with other --retry-delay).
  assert.equal(queue.retryDelayOf("jobs.retry.750ms"), 750);
  for (
    const other of [
      "jobs",
      "jobs.dead",
      "jobs.retry.",
      "jobs.retry.ms",
      "jobs.retry.10s",
      "jobs.retry.-5ms",
      "jobs.retry.5ms.dead",
      "jobs.retry.5ms.retry.10ms",
      "jobs2.retry.1000ms",
      "other.retry.1000ms",
      "x.jobs.retry.1000ms",
    ]
  ) {
    assert.equal(queue.retryDelayOf(other), undefined, other);
  }
});

Deno.test("TaskQueue rejects an empty name and one over 255 bytes", () => {
  assert.throws(() => new TaskQueue(""), {
    name: "RangeError",
    message: 'Invalid queue name "": must be 1 to 255 bytes',
  });
  const long = "q".repeat(256);
  assert.throws(() => new TaskQueue(long), {
    name: "RangeError",
    message: `Invalid queue name "${long}": must be 1 to 255 bytes`,
  });
  // Bytes, not characters: 128 two-byte characters are 256 bytes.
  assert.throws(() => new TaskQueue("é".repeat(128), { maxRetries: 0 }), {
    name: "RangeError",
    message: /must be 1 to 255 bytes/,
  });
});

Deno.test('TaskQueue rejects names starting with "amq."', () => {
  assert.throws(() => new TaskQueue("amq.tasks"), {
    name: "RangeError",
    message: 'Invalid queue name "amq.tasks": names starting with "amq." are reserved',
  });
  assert.equal(new TaskQueue("amq-tasks").name, "amq-tasks");
  assert.equal(new TaskQueue("tasks.amq.").name, "tasks.amq.");
});

Deno.test("TaskQueue rejects a name whose retry or dead queue would not fit 255 bytes, naming the longest that works", () => {
  // Default policy: the longest derived names are "<q>.retry.1000ms" to 4000ms, 13 bytes more.
  assert.equal(new TaskQueue("q".repeat(242)).name.length, 242);
  const tooLong = "q".repeat(243);
  assert.throws(() => new TaskQueue(tooLong), {
    name: "RangeError",
    message:
      `Invalid queue name "${tooLong}": its queue "${tooLong}.retry.1000ms" would be longer than 255 bytes; with this retry policy a name may have at most 242 bytes`,
  });
  // No retries: only "<q>.dead", 5 bytes more.
  assert.equal(new TaskQueue("q".repeat(250), { maxRetries: 0 }).name.length, 250);
  assert.throws(() => new TaskQueue("q".repeat(251), { maxRetries: 0 }), {
    name: "RangeError",
    message: /its queue "q{251}\.dead" would be longer than 255 bytes; .* at most 250 bytes$/,
  });
  // A name that fits 255 bytes itself, with the longest possible delay (19 bytes more).
  const policy = { maxRetries: 40, retryDelay: 1, maxRetryDelay: 2_147_483_647 };
  assert.equal(new TaskQueue("q".repeat(236), policy).name.length, 236);
  assert.throws(() => new TaskQueue("q".repeat(255), policy), {
    name: "RangeError",
    message: /"q{255}\.retry\.\d{10}ms" would be longer .* at most 236 bytes$/,
  });
  // Counted in bytes: 121 two-byte characters are 242 bytes, 122 are 244.
  assert.equal(new TaskQueue("é".repeat(121)).name, "é".repeat(121));
  assert.throws(() => new TaskQueue("é".repeat(122)), {
    name: "RangeError",
    message: /at most 242 bytes$/,
  });
});

Deno.test("TaskQueue rejects a retryDelay longer than maxRetryDelay", () => {
  assert.throws(() => new TaskQueue("q", { retryDelay: 2000, maxRetryDelay: 1000 }), {
    name: "RangeError",
    message: 'Invalid retryDelay "2000": expected a whole number from 1 to 1000',
  });
  assert.deepEqual(
    new TaskQueue("q", { retryDelay: 1000, maxRetryDelay: 1000, maxRetries: 2 }).retrySchedule,
    [1000, 1000],
  );
});

Deno.test("TaskQueue rejects delays that are not whole milliseconds in range", () => {
  for (const retryDelay of [0, -1, 1.5, Number.NaN]) {
    assert.throws(() => new TaskQueue("q", { retryDelay }), {
      name: "RangeError",
      message: `Invalid retryDelay "${retryDelay}": expected a whole number from 1 to 600000`,
    });
  }
  for (const maxRetryDelay of [0, 2_147_483_648, 0.5]) {
    assert.throws(() => new TaskQueue("q", { maxRetryDelay }), {
      name: "RangeError",
      message:
        `Invalid maxRetryDelay "${maxRetryDelay}": expected a whole number from 1 to 2147483647`,
    });
  }
});

Deno.test("TaskQueue rejects an unknown type with a TypeError", () => {
  assert.throws(() => new TaskQueue("q", { type: "stream" as QueueType }), {
    name: "TypeError",
    message: 'Invalid queue type "stream": expected classic or quorum',
  });
  assert.equal(new TaskQueue("q", { type: "quorum" }).type, "quorum");
});

Deno.test("TaskQueue takes maxRetries from 0 to 1000", () => {
  assert.equal(new TaskQueue("q", { maxRetries: 0 }).maxTries, 1);
  const most = new TaskQueue("q", { maxRetries: 1000 });
  assert.equal(most.retrySchedule.length, 1000);
  assert.equal(most.retrySchedule.at(-1), 600_000);
  for (const maxRetries of [-1, 1001, 2.5, Number.NaN]) {
    assert.throws(() => new TaskQueue("q", { maxRetries }), {
      name: "RangeError",
      message: `Invalid maxRetries "${maxRetries}": expected a whole number from 0 to 1000`,
    });
  }
});
