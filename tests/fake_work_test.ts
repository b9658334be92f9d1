import assert from "node:assert/strict";
import { fakeWork, workDuration } from "../lib/handlers/fake_work.ts";

Deno.test("workDuration() is one unit per dot anywhere in the body", () => {
  assert.equal(workDuration("Hello World!", 1000), 0);
  assert.equal(workDuration("First message.", 1000), 1000);
  assert.equal(workDuration("Fifth message.....", 1000), 5000);
  assert.equal(workDuration("a.b.c", 20), 40);
  assert.equal(workDuration(new TextEncoder().encode(".x.."), 10), 30);
  assert.equal(workDuration(new TextEncoder().encode("none"), 10), 0);
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
  assert.ok(cut instanceof Promise);
  controller.abort();
  await assert.rejects(cut, { name: "AbortError" });
});

Deno.test("fakeWork() of a body without dots is done at once, without a promise", () => {
  assert.equal(fakeWork("Hello World!", { dotMs: 1000 }), undefined);
  assert.equal(fakeWork(new TextEncoder().encode("no dots"), { dotMs: 1000 }), undefined);
  assert.equal(fakeWork("...", { dotMs: 0 }), undefined);
});
