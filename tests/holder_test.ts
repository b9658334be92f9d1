import assert from "node:assert/strict";
import { Holder } from "../lib/consume/holder.ts";
import { FakeClock } from "./_fake_clock.ts";

/** A held task that fails to park `failures` times, then parks; records what happened. */
function heldTask(failures: number) {
  const record = { parks: 0, released: 0, waits: [] as number[], parked: false };
  return {
    record,
    task: {
      park() {
        record.parks++;
        if (record.parks <= failures) return Promise.reject(new Error("too large"));
        record.parked = true;
        return Promise.resolve();
      },
      release: () => void record.released++,
      onStillHeld: (_error: unknown, next: number) => void record.waits.push(next),
    },
  };
}

/** Lets the promise callbacks of a park attempt run. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("Holder tries to park a held task with doubling waits up to the cap, then lets it go", async () => {
  const clock = new FakeClock();
  const counts: number[] = [];
  const holder = new Holder({
    clock,
    firstDelay: 100,
    maxDelay: 300,
    onCount: (n) => counts.push(n),
  });
  const { task, record } = heldTask(3);
  holder.hold(task);
  assert.deepEqual(counts, [1]);
  assert.equal(record.parks, 0, "not before the first wait");
  for (const step of [100, 200, 300, 300]) {
    clock.advance(step);
    await settle();
  }
  assert.equal(record.parks, 4);
  assert.deepEqual(record.waits, [200, 300, 300], "doubling, capped");
  assert.ok(record.parked);
  assert.equal(holder.size, 0);
  assert.deepEqual(counts, [1, 0]);
  assert.deepEqual(clock.timeouts, [], "no timer left");
});

Deno.test("Holder.releaseAll() gives every held task back and stops trying; later holds release at once", () => {
  const clock = new FakeClock();
  const holder = new Holder({ clock, firstDelay: 100 });
  const first = heldTask(10);
  const second = heldTask(10);
  holder.hold(first.task);
  holder.hold(second.task);
  holder.releaseAll();
  assert.equal(first.record.released + second.record.released, 2);
  assert.deepEqual(clock.timeouts, []);
  clock.advance(10_000);
  assert.equal(first.record.parks, 0);
  const late = heldTask(0);
  holder.hold(late.task);
  assert.equal(late.record.released, 1);
});

Deno.test("Holder.forget() drops held tasks without releasing them (their channel is gone)", () => {
  const clock = new FakeClock();
  const holder = new Holder({ clock, firstDelay: 100 });
  const held = heldTask(10);
  holder.hold(held.task);
  holder.forget();
  clock.advance(1000);
  assert.equal(held.record.released, 0);
  assert.equal(held.record.parks, 0);
  assert.equal(holder.size, 0);
});
