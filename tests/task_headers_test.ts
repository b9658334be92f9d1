// The try-counting rules: only what this project wrote for this queue, plus the broker's count
// of this very copy's unsettled deliveries.
import assert from "node:assert/strict";
import type { Message } from "../lib/amqp.ts";
import {
  attemptsSoFar,
  crashedDeliveries,
  recordedAttempts,
  TASK_HEADERS,
} from "../lib/topology/task_headers.ts";

const QUEUE = "jobs";

function delivered(
  headers?: Record<string, unknown>,
  redelivered = false,
): Pick<Message, "properties" | "fields"> {
  return {
    properties: { headers } as Message["properties"],
    fields: { redelivered } as Message["fields"],
  };
}

/** Headers as a move of this project writes them. */
function ours(attempts: unknown, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { [TASK_HEADERS.attempts]: attempts, [TASK_HEADERS.queue]: QUEUE, ...extra };
}

Deno.test("attemptsSoFar() is 0 for a new task: no headers, or none of ours", () => {
  assert.equal(attemptsSoFar(delivered(), QUEUE), 0);
  assert.equal(attemptsSoFar(delivered({}), QUEUE), 0);
  assert.equal(attemptsSoFar(delivered({ "x-first-death-reason": "expired" }), QUEUE), 0);
  assert.equal(attemptsSoFar(delivered(ours(0)), QUEUE), 0);
});

Deno.test("attemptsSoFar() counts the task-attempts written by earlier moves for this queue", () => {
  assert.equal(TASK_HEADERS.attempts, "task-attempts");
  assert.equal(attemptsSoFar(delivered(ours(1)), QUEUE), 1);
  assert.equal(attemptsSoFar(delivered(ours(7)), QUEUE), 7);
});

Deno.test("attemptsSoFar() ignores a task-attempts another program wrote: text, or no task-queue of ours", () => {
  assert.equal(attemptsSoFar(delivered({ "task-attempts": 3 }), QUEUE), 0, "no task-queue");
  assert.equal(attemptsSoFar(delivered(ours(3, { "task-queue": "other" })), QUEUE), 0);
  assert.equal(attemptsSoFar(delivered(ours("4")), QUEUE), 0, "text is not a count");
  assert.equal(recordedAttempts({ "task-attempts": 2 }), 2, "without a queue, any number counts");
});

Deno.test("attemptsSoFar() counts x-delivery-count only on a redelivery, when the broker wrote it", () => {
  assert.equal(attemptsSoFar(delivered({ "x-delivery-count": 50 }), QUEUE), 0);
  assert.equal(attemptsSoFar(delivered({ "x-delivery-count": 2 }, true), QUEUE), 2);
  assert.equal(crashedDeliveries(delivered({ "x-delivery-count": "2" }, true)), 0);
});

Deno.test("attemptsSoFar() adds recorded tries and this copy's crashed deliveries", () => {
  assert.equal(attemptsSoFar(delivered(ours(3, { "x-delivery-count": 2 }), true), QUEUE), 5);
});

Deno.test("attemptsSoFar() ignores negative, fractional and unsafe values", () => {
  for (const bad of ["abc", -1, 1.5, Number.NaN, Infinity, 2 ** 53, { value: 3 }, null]) {
    assert.equal(attemptsSoFar(delivered(ours(bad)), QUEUE), 0, `task-attempts ${bad}`);
    assert.equal(
      attemptsSoFar(delivered({ "x-delivery-count": bad }, true), QUEUE),
      0,
      `x-delivery-count ${bad}`,
    );
    assert.equal(
      attemptsSoFar(delivered(ours(bad, { "x-delivery-count": 2 }), true), QUEUE),
      2,
      `task-attempts ${bad} beside a good x-delivery-count`,
    );
  }
});
