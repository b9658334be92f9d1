// The try-counting rules as they are today; kept apart so they are easy to update when the rules
// change.
import assert from "node:assert/strict";
import type { Message } from "../lib/amqp.ts";
import { attemptsSoFar, TASK_HEADERS } from "../lib/topology/task_headers.ts";

function delivered(headers?: Record<string, unknown>): Pick<Message, "properties"> {
  return { properties: { headers } as Message["properties"] };
}

Deno.test("attemptsSoFar() is 0 for a new task: no headers, or none of ours", () => {
  assert.equal(attemptsSoFar(delivered()), 0);
  assert.equal(attemptsSoFar(delivered({})), 0);
  assert.equal(attemptsSoFar(delivered({ "x-first-death-reason": "expired" })), 0);
  assert.equal(attemptsSoFar(delivered({ [TASK_HEADERS.attempts]: 0 })), 0);
});

Deno.test("attemptsSoFar() counts the task-attempts header written by earlier retries", () => {
  assert.equal(TASK_HEADERS.attempts, "task-attempts");
  assert.equal(attemptsSoFar(delivered({ "task-attempts": 1 })), 1);
  assert.equal(attemptsSoFar(delivered({ "task-attempts": 7 })), 7);
});

Deno.test("attemptsSoFar() counts the quorum queue's x-delivery-count", () => {
  assert.equal(attemptsSoFar(delivered({ "x-delivery-count": 2 })), 2);
});

Deno.test("attemptsSoFar() adds task-attempts and x-delivery-count", () => {
  assert.equal(attemptsSoFar(delivered({ "task-attempts": 3, "x-delivery-count": 2 })), 5);
});

Deno.test("attemptsSoFar() takes a header of digits as its number", () => {
  assert.equal(attemptsSoFar(delivered({ "task-attempts": "4" })), 4);
  assert.equal(attemptsSoFar(delivered({ "task-attempts": "4", "x-delivery-count": "1" })), 5);
});

Deno.test("attemptsSoFar() ignores non-numeric, negative, fractional and unsafe values", () => {
  for (
    const bad of [
      "abc",
      "3 tries",
      -1,
      -5,
      1.5,
      Number.NaN,
      Infinity,
      2 ** 53,
      { value: 3 },
      null,
    ]
  ) {
    assert.equal(attemptsSoFar(delivered({ "task-attempts": bad })), 0, `task-attempts ${bad}`);
    assert.equal(
      attemptsSoFar(delivered({ "x-delivery-count": bad })),
      0,
      `x-delivery-count ${bad}`,
    );
    // A bad header does not spoil the other one.
    assert.equal(
      attemptsSoFar(delivered({ "task-attempts": bad, "x-delivery-count": 2 })),
      2,
      `task-attempts ${bad} beside a good x-delivery-count`,
    );
    assert.equal(
      attemptsSoFar(delivered({ "task-attempts": 3, "x-delivery-count": bad })),
      3,
      `x-delivery-count ${bad} beside a good task-attempts`,
    );
  }
});
