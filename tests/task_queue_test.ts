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

Deno.test("TaskQueue.delayQueues are 32 levels whatever the policy, and a retry goes to the level of its delay's highest bit", () => {
  for (const options of [{}, { maxRetries: 0 }, { maxRetries: 40, retryDelay: 1 }]) {
    const queue = new TaskQueue("jobs", options);
    assert.equal(queue.delayQueues.length, 32);
    assert.equal(queue.delayQueues[0], "jobs.delay.L00");
    assert.equal(queue.delayQueues[31], "jobs.delay.L31");
  }
  const queue = new TaskQueue("jobs");
  // 1000, 2000 and 4000 ms: 10 bits, 11 bits, 12 bits.
  assert.deepEqual(
    queue.retrySchedule.map((delay) => queue.delayRoute(delay).exchange),
    ["jobs.delay.L09", "jobs.delay.L10", "jobs.delay.L11"],
  );
  assert.deepEqual(queue.delayRoute(250), {
    exchange: "jobs.delay.L07",
    routingKey: "1.1.1.1.1.0.1.0",
  });
});

Deno.test("TaskQueue.deadQueue is <name>.dead", () => {
  assert.equal(new TaskQueue().deadQueue, "task_queue.dead");
  assert.equal(new TaskQueue("images", { type: "quorum" }).deadQueue, "images.dead");
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

Deno.test("TaskQueue rejects a name whose delay queues would not fit 255 bytes, naming the longest that works", () => {
  // The longest derived name, whatever the policy, is "<q>.delay.L31": 10 bytes more.
  assert.equal(new TaskQueue("q".repeat(245)).name.length, 245);
  assert.equal(new TaskQueue("q".repeat(245), { maxRetries: 0 }).name.length, 245);
  const tooLong = "q".repeat(246);
  assert.throws(() => new TaskQueue(tooLong), {
    name: "RangeError",
    message:
      `Invalid queue name "${tooLong}": its queue "${tooLong}.delay.L31" would be longer than 255 bytes; a name may have at most 245 bytes`,
  });
  assert.throws(() => new TaskQueue("q".repeat(246), { maxRetries: 0 }), {
    name: "RangeError",
    message: /at most 245 bytes$/,
  });
  // Counted in bytes: 122 two-byte characters are 244 bytes, 123 are 246.
  assert.equal(new TaskQueue("é".repeat(122)).name, "é".repeat(122));
  assert.throws(() => new TaskQueue("é".repeat(123)), {
    name: "RangeError",
    message: /at most 245 bytes$/,
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
