import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { onShutdownSignal } from "../lib/cli/shutdown.ts";

// SIGHUP, sent to this process: the signal the demo adds to the default SIGINT and SIGTERM. It is
// only sent while a listener is installed, and each one is awaited before the listener goes.

/** `promise`, or a failure after 5 s; its timer also keeps the event loop alive meanwhile. */
async function within<T>(promise: Promise<T>): Promise<T> {
  const timer = new AbortController();
  try {
    return await Promise.race([
      promise,
      sleep(5_000, undefined, { signal: timer.signal }).then(() => {
        throw new Error("No signal within 5 s");
      }),
    ]);
  } finally {
    timer.abort();
  }
}

Deno.test("onShutdownSignal() handles the signals it is given; a repeat after 300 ms forces", async () => {
  const first = Promise.withResolvers<Deno.Signal>();
  const forced = Promise.withResolvers<[string, Deno.Signal | undefined]>();
  using _signals = onShutdownSignal({
    signals: ["SIGHUP"],
    timeout: 60_000,
    onFirst: (signal) => first.resolve(signal),
    onForced: (reason, signal) => forced.resolve([reason, signal]),
  });
  Deno.kill(Deno.pid, "SIGHUP");
  assert.equal(await within(first.promise), "SIGHUP");
  // Past the window in which a repeat counts as the same signal.
  await sleep(350);
  Deno.kill(Deno.pid, "SIGHUP");
  assert.deepEqual(await within(forced.promise), ["Second SIGHUP", "SIGHUP"]);
});

Deno.test("onShutdownSignal() counts a repeat within 300 ms as the same signal", async () => {
  const first = Promise.withResolvers<void>();
  const forced: string[] = [];
  using _signals = onShutdownSignal({
    signals: ["SIGHUP"],
    timeout: 60_000,
    onFirst: () => first.resolve(),
    onForced: (reason) => forced.push(reason),
  });
  Deno.kill(Deno.pid, "SIGHUP");
  await within(first.promise);
  Deno.kill(Deno.pid, "SIGHUP");
  // Long enough for the repeat to arrive, short of the window.
  await sleep(100);
  assert.deepEqual(forced, []);
});

Deno.test("onShutdownSignal() forces after the timeout, with no signal", async () => {
  const forced = Promise.withResolvers<[string, Deno.Signal | undefined]>();
  using _signals = onShutdownSignal({
    signals: ["SIGHUP"],
    timeout: 50,
    onFirst: () => {},
    onForced: (reason, signal) => forced.resolve([reason, signal]),
  });
  Deno.kill(Deno.pid, "SIGHUP");
  assert.deepEqual(await within(forced.promise), ["Shutdown took longer than 50 ms", undefined]);
});

Deno.test("onShutdownSignal() rejects an empty list of signals with RangeError", () => {
  assert.throws(
    () => onShutdownSignal({ signals: [], onFirst: () => {}, onForced: () => {} }),
    RangeError,
  );
});
