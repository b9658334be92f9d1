import assert from "node:assert/strict";
import { Deadlines, type Try } from "../lib/consume/deadlines.ts";
import { FakeClock } from "./_fake_clock.ts";

function reasonOf(run: Try): string {
  const reason: unknown = run.signal.reason;
  assert.ok(reason instanceof Error, `expected an Error, got ${String(reason)}`);
  return reason.message;
}

Deno.test('Deadlines aborts a try that runs past its limit with "timeout after N ms"', () => {
  const clock = new FakeClock();
  const deadlines = new Deadlines(500, { clock });
  try {
    const run = deadlines.start();
    clock.advance(499);
    assert.equal(run.signal.aborted, false);
    clock.advance(1);
    assert.equal(run.signal.aborted, true);
    assert.equal(reasonOf(run), "timeout after 500 ms");
  } finally {
    deadlines.close();
  }
});

Deno.test("Deadlines leaves a try within its limit untouched while an older one times out", () => {
  const clock = new FakeClock();
  const deadlines = new Deadlines(500, { clock });
  try {
    const old = deadlines.start();
    clock.advance(300);
    const young = deadlines.start();
    clock.advance(250);
    assert.equal(old.signal.aborted, true);
    assert.equal(young.signal.aborted, false);
    clock.advance(249);
    assert.equal(young.signal.aborted, false);
    // Stopped at the first sweep at or after its limit: 800 ms is a sweep time (every 50 ms).
    clock.advance(1);
    assert.equal(young.signal.aborted, true);
    assert.equal(reasonOf(young), "timeout after 500 ms");
  } finally {
    deadlines.close();
  }
});

Deno.test("Deadlines stops a try at the first sweep after its limit, within a tenth of it", () => {
  const clock = new FakeClock();
  const deadlines = new Deadlines(1000, { clock });
  try {
    clock.advance(130);
    const run = deadlines.start();
    // Sweeps every 100 ms: at 1100 the try has had 970 ms, at 1200 it has had 1070 ms.
    clock.advance(970);
    assert.equal(run.signal.aborted, false);
    clock.advance(99);
    assert.equal(run.signal.aborted, false);
    clock.advance(1);
    assert.equal(run.signal.aborted, true);
  } finally {
    deadlines.close();
  }
});

Deno.test("Deadlines.finish() removes a try: it is never aborted", () => {
  const clock = new FakeClock();
  const deadlines = new Deadlines(100, { clock });
  try {
    const finished = deadlines.start();
    const running = deadlines.start();
    clock.advance(50);
    deadlines.finish(finished);
    clock.advance(1000);
    assert.equal(finished.signal.aborted, false);
    assert.equal(running.signal.aborted, true);
  } finally {
    deadlines.close();
  }
});

Deno.test("Deadlines with timeout 0 sets no timer and never aborts a try", () => {
  const clock = new FakeClock();
  const deadlines = new Deadlines(0, { clock });
  assert.deepEqual(clock.intervals, []);
  const run = deadlines.start();
  clock.advance(3_600_000);
  assert.equal(run.signal.aborted, false);
  deadlines.close();
  assert.deepEqual(clock.intervals, []);
});

Deno.test("Deadlines.close() clears its timer, and no try is aborted after it", () => {
  const clock = new FakeClock();
  const deadlines = new Deadlines(100, { clock });
  assert.equal(clock.intervals.length, 1);
  const run = deadlines.start();
  deadlines.close();
  assert.deepEqual(clock.intervals, []);
  clock.advance(1000);
  assert.equal(run.signal.aborted, false);
  deadlines.close(); // twice is harmless
});

Deno.test("Deadlines sweeps every min(1000, max(10, timeout / 10)) ms", () => {
  const cases: [timeout: number, sweep: number][] = [
    [1, 10],
    [50, 10],
    [100, 10],
    [250, 25],
    [5000, 500],
    [10_000, 1000],
    [600_000, 1000],
  ];
  for (const [timeout, sweep] of cases) {
    const clock = new FakeClock();
    const deadlines = new Deadlines(timeout, { clock });
    try {
      assert.deepEqual(clock.intervals, [sweep], `timeout ${timeout}`);
    } finally {
      deadlines.close();
    }
  }
});

Deno.test("Deadlines runs on the system clock by default and clears its real timer on close()", () => {
  // The sanitizers fail this test if close() leaves the interval running.
  const deadlines = new Deadlines(60_000);
  const run = deadlines.start();
  assert.equal(run.signal.aborted, false);
  deadlines.close();
});

Deno.test("Deadlines.finish() tells how long the try ran, on the deadlines' clock", () => {
  const clock = new FakeClock();
  const deadlines = new Deadlines(1000, { clock });
  try {
    clock.advance(70);
    const run = deadlines.start();
    assert.equal(run.startedAt, 70);
    clock.advance(123);
    assert.equal(deadlines.finish(run), 123);
  } finally {
    deadlines.close();
  }
});

Deno.test("Try.race() settles as the work does while the try has time", async () => {
  const clock = new FakeClock();
  const deadlines = new Deadlines(1000, { clock });
  try {
    assert.equal(await deadlines.start().race(Promise.resolve("done")), "done");
    await assert.rejects(deadlines.start().race(Promise.reject(new Error("boom"))), /boom/);
  } finally {
    deadlines.close();
  }
});

Deno.test("Try.race() rejects with the timeout when the work outlasts the try, and the work is left", async () => {
  const clock = new FakeClock();
  const deadlines = new Deadlines(100, { clock });
  try {
    const never = new Promise<never>(() => {});
    const run = deadlines.start();
    const raced = run.race(never);
    clock.advance(100);
    await assert.rejects(raced, /timeout after 100 ms/);
    // A try already out of time rejects at once.
    await assert.rejects(run.race(Promise.resolve(1)), /timeout after 100 ms/);
  } finally {
    deadlines.close();
  }
});
