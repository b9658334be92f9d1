import assert from "node:assert/strict";
import { Emitter } from "../lib/observe/emitter.ts";

type Event =
  | { type: "done"; id: string; durationMs: number }
  | { type: "failed"; id: string; reason: string }
  | { type: "idle" };

Deno.test("Emitter tells a typed listener only the events of its type", () => {
  const emitter = new Emitter<Event>();
  const done: string[] = [];
  const failed: string[] = [];
  // The listener's event is narrowed to its type: `durationMs` and `reason` type-check.
  emitter.on("done", (event) => done.push(`${event.id} ${event.durationMs}`));
  emitter.on("failed", (event) => failed.push(`${event.id} ${event.reason}`));
  emitter.emit({ type: "done", id: "a", durationMs: 5 });
  emitter.emit({ type: "failed", id: "b", reason: "exit code 1" });
  emitter.emit({ type: "idle" });
  emitter.emit({ type: "done", id: "c", durationMs: 7 });
  assert.deepEqual(done, ["a 5", "c 7"]);
  assert.deepEqual(failed, ["b exit code 1"]);
});

Deno.test('Emitter tells a "*" listener every event, after the typed listeners', () => {
  const emitter = new Emitter<Event>();
  const seen: string[] = [];
  emitter.on("*", (event) => seen.push(`* ${event.type}`));
  emitter.on("idle", (event) => seen.push(`idle ${event.type}`));
  emitter.emit({ type: "done", id: "a", durationMs: 1 });
  emitter.emit({ type: "idle" });
  emitter.emit({ type: "failed", id: "b", reason: "x" });
  assert.deepEqual(seen, ["* done", "idle idle", "* idle", "* failed"]);
});

Deno.test("Emitter calls several listeners of one type in the order they were added", () => {
  const emitter = new Emitter<Event>();
  const seen: number[] = [];
  emitter.on("idle", () => seen.push(1));
  emitter.on("idle", () => seen.push(2));
  emitter.emit({ type: "idle" });
  assert.deepEqual(seen, [1, 2]);
});

Deno.test("Emitter.on() returns a function that removes just that listener", () => {
  const emitter = new Emitter<Event>();
  const seen: string[] = [];
  const offFirst = emitter.on("idle", () => seen.push("first"));
  emitter.on("idle", () => seen.push("second"));
  const offAll = emitter.on("*", () => seen.push("all"));
  emitter.emit({ type: "idle" });
  offFirst();
  emitter.emit({ type: "idle" });
  offAll();
  emitter.emit({ type: "idle" });
  offFirst(); // twice is harmless
  emitter.emit({ type: "idle" });
  assert.deepEqual(seen, ["first", "second", "all", "second", "all", "second", "second"]);
});

Deno.test("Emitter with no listeners takes events without complaint", () => {
  const emitter = new Emitter<Event>();
  emitter.emit({ type: "idle" });
  const off = emitter.on("done", () => assert.fail("not a done event"));
  emitter.emit({ type: "idle" });
  off();
  emitter.emit({ type: "done", id: "a", durationMs: 1 });
});

Deno.test("Emitter goes on to the other listeners when one throws, and reports the error", async () => {
  const emitter = new Emitter<Event>();
  const seen: string[] = [];
  const reported: unknown[] = [];
  const onError = (event: ErrorEvent) => {
    event.preventDefault();
    reported.push(event.error);
  };
  globalThis.addEventListener("error", onError);
  try {
    emitter.on("idle", () => {
      throw new Error("broken listener");
    });
    emitter.on("idle", () => seen.push("typed"));
    emitter.on("*", () => seen.push("all"));
    emitter.emit({ type: "idle" });
    assert.deepEqual(seen, ["typed", "all"]);
    // Reported as an uncaught error, once the emit is over.
    assert.equal(reported.length, 0);
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert.equal(reported.length, 1);
    assert.ok(reported[0] instanceof Error);
    assert.equal(reported[0].message, "broken listener");
  } finally {
    globalThis.removeEventListener("error", onError);
  }
});
