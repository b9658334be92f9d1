import assert from "node:assert/strict";
import { fakeWork, workDuration } from "../lib/handlers/fake_work.ts";

Deno.test("workDuration() is one unit per dot anywhere in the body", () => {
  assert.equal(workDuration("Hello World!", 1000), 0);
  assert.equal(workDuration("First message.", 1000), 1000);
  assert.equal(workDuration("Fifth message.....", 1000), 5000);
  assert.equal(workDuration("a.b.c", 20), 40);
  assert.equal(workDuration("...", 0), 0);
  assert.throws(() => workDuration(".", -1), RangeError);
  assert.throws(() => workDuration(".", NaN), RangeError);
});

Deno.test("fakeWork() takes about the body's duration and can be cut short", async () => {
  const started = performance.now();
  await fakeWork("..", { dotMs: 30 });
  assert.ok(performance.now() - started >= 55);
  const controller = new AbortController();
  const cut = fakeWork("..........", { dotMs: 1000, signal: controller.signal });
  controller.abort();
  await assert.rejects(cut, { name: "AbortError" });
});
