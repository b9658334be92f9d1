import assert from "node:assert/strict";
import { setImmediate } from "node:timers";
import { AmqpError } from "../lib/broker/errors.ts";
import {
  type BulkPublisher,
  sendAll,
  type SendAllOptions,
  type SendAllResult,
} from "../lib/produce/bulk_send.ts";
import { FakeClock } from "./_fake_clock.ts";

interface Sent {
  body: string;
  done: (error?: AmqpError) => void;
  settled: boolean;
}

/** A publisher that confirms or fails tasks only when the test says so. */
class FakePublisher implements BulkPublisher {
  blocked = false;
  sent: Sent[] = [];
  inFlight = 0;
  mostInFlight = 0;
  #drained: PromiseWithResolvers<void> | undefined;

  get full(): boolean {
    return this.#drained !== undefined;
  }

  writable(): Promise<void> {
    return this.#drained?.promise ?? Promise.resolve();
  }

  send(content: string | Uint8Array, _id: string, done: (error?: AmqpError) => void): void {
    this.sent.push({ body: String(content), done, settled: false });
    this.mostInFlight = Math.max(this.mostInFlight, ++this.inFlight);
  }

  /** Confirms task `index` (0-based, in publish order). */
  confirm(index: number): void {
    this.#settle(index);
  }

  /** Fails task `index` as the broker's nack would. */
  fail(index: number): AmqpError {
    const error = new AmqpError(`Task ${index} was not sent: the broker refused it (nack)`);
    this.#settle(index, error);
    return error;
  }

  /** Makes the channel's write buffer full until {@linkcode FakePublisher.drain}. */
  fill(): void {
    this.#drained ??= Promise.withResolvers<void>();
  }

  drain(): void {
    this.#drained?.resolve();
    this.#drained = undefined;
  }

  #settle(index: number, error?: AmqpError): void {
    const task = this.sent[index];
    assert.ok(task, `task ${index} was never sent`);
    assert.equal(task.settled, false, `task ${index} settled twice`);
    task.settled = true;
    this.inFlight--;
    task.done(error);
  }
}

/** Lets everything that is ready to run, run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** A sendAll call whose result can be looked at before it is awaited. */
function start(
  publisher: FakePublisher,
  bodies: Iterable<string> | AsyncIterable<string>,
  options: SendAllOptions,
): { result: Promise<SendAllResult>; done(): SendAllResult | undefined } {
  let done: SendAllResult | undefined;
  const result = sendAll(publisher, bodies, options);
  result.then((value) => done = value, () => {});
  return {
    result,
    done: () => done,
  };
}

/** `items`, once `gate` has resolved. */
async function* gated(gate: Promise<void>, ...items: string[]): AsyncGenerator<string> {
  await gate;
  yield* items;
}

function bodies(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `t${i}`);
}

Deno.test("sendAll() gives up on a publisher that never confirms after about confirmTimeout", async () => {
  const clock = new FakeClock();
  const publisher = new FakePublisher();
  // The watchdog runs every confirmTimeout / 4 = 25 ms.
  const send = start(publisher, bodies(3), { confirmTimeout: 100, clock });
  await settle();
  assert.equal(publisher.sent.length, 3);
  clock.advance(100);
  await settle();
  assert.equal(send.done(), undefined, "no confirm for exactly confirmTimeout is not yet a stall");
  clock.advance(25);
  await settle();
  const result = send.done();
  assert.ok(result, "given up by the first watchdog tick past confirmTimeout");
  assert.ok(result.error instanceof AmqpError);
  assert.equal(result.error.message, "No confirm from the broker for 100 ms");
  assert.deepEqual(
    { published: result.published, confirmed: result.confirmed, prefix: result.confirmedPrefix },
    { published: 3, confirmed: 0, prefix: 0 },
  );
  assert.deepEqual(clock.intervals, [], "the watchdog is stopped");
});

Deno.test("sendAll() counts a stall from the last confirm and reports the confirmed prefix", async () => {
  const clock = new FakeClock();
  const publisher = new FakePublisher();
  const send = start(publisher, bodies(5), { confirmTimeout: 100, clock });
  await settle();
  clock.advance(90);
  publisher.confirm(0);
  publisher.confirm(1);
  await settle();
  // 90 ms since the publish, but only 60 since the last confirm: not a stall.
  clock.advance(60);
  await settle();
  assert.equal(send.done(), undefined);
  clock.advance(75);
  await settle();
  const result = send.done();
  assert.ok(result);
  assert.match(String(result.error), /No confirm from the broker for 100 ms/);
  assert.equal(result.confirmed, 2);
  assert.equal(result.confirmedPrefix, 2);
});

Deno.test("sendAll() reports the exact confirmed prefix on a stall when confirms came out of order", async () => {
  const clock = new FakeClock();
  const publisher = new FakePublisher();
  const send = start(publisher, bodies(5), { confirmTimeout: 100, clock });
  await settle();
  // Tasks 2, 3 and 4 confirmed; 0 and 1 never are.
  publisher.confirm(4);
  publisher.confirm(2);
  publisher.confirm(3);
  clock.advance(200);
  await settle();
  const result = send.done();
  assert.ok(result);
  assert.match(String(result.error), /No confirm from the broker/);
  assert.equal(result.confirmed, 3);
  assert.equal(result.confirmedPrefix, 0, "task 0 was never confirmed");
});

Deno.test("sendAll() does not count time while the broker blocks publishers", async () => {
  const clock = new FakeClock();
  const publisher = new FakePublisher();
  const send = start(publisher, bodies(2), { confirmTimeout: 100, clock });
  await settle();
  clock.advance(50);
  publisher.blocked = true;
  clock.advance(10_000);
  await settle();
  assert.equal(send.done(), undefined, "blocked for 100 times confirmTimeout, still waiting");
  publisher.blocked = false;
  clock.advance(100);
  await settle();
  assert.equal(send.done(), undefined, "confirmTimeout since the unblock is not yet a stall");
  publisher.confirm(0);
  publisher.confirm(1);
  await settle();
  const result = send.done();
  assert.ok(result);
  assert.equal(result.error, undefined);
  assert.equal(result.confirmed, 2);
  assert.equal(result.confirmedPrefix, 2);
});

Deno.test("sendAll() stalls after confirmTimeout of unblocked time once the block lifts", async () => {
  const clock = new FakeClock();
  const publisher = new FakePublisher();
  const send = start(publisher, bodies(1), { confirmTimeout: 100, clock });
  await settle();
  publisher.blocked = true;
  clock.advance(1000);
  publisher.blocked = false;
  clock.advance(125);
  await settle();
  assert.match(String(send.done()?.error), /No confirm from the broker for 100 ms/);
});

Deno.test("sendAll() gives a task published after an idle spell its whole confirmTimeout", async () => {
  const clock = new FakeClock();
  const publisher = new FakePublisher();
  const gate = Promise.withResolvers<void>();
  // The watchdog runs every 1000 ms; the task is published just before a tick, after 3.9 s idle.
  const send = start(publisher, gated(gate.promise, "late"), { confirmTimeout: 4500, clock });
  clock.advance(3999);
  gate.resolve();
  await settle();
  assert.equal(publisher.sent.length, 1);
  clock.advance(4500);
  await settle();
  assert.equal(send.done(), undefined, "timed out before the task had waited confirmTimeout");
  clock.advance(1000);
  await settle();
  assert.match(String(send.done()?.error), /No confirm from the broker for 4500 ms/);
});

Deno.test("sendAll() never has more than window tasks in flight, and refills it by halves", async () => {
  const clock = new FakeClock();
  const publisher = new FakePublisher();
  const send = start(publisher, bodies(20), { window: 4, clock });
  await settle();
  assert.equal(publisher.sent.length, 4);
  // A full window is refilled once half of it is confirmed, in one burst, whatever the order.
  publisher.confirm(1);
  await settle();
  assert.equal(publisher.sent.length, 4, "one place free: not yet");
  publisher.confirm(3);
  await settle();
  assert.equal(publisher.sent.length, 6, "half the window free: refilled");
  publisher.confirm(0);
  await settle();
  assert.equal(publisher.sent.length, 6, "three in flight, above half");
  for (let next = 0; next < 20; next++) {
    if (!publisher.sent[next]?.settled && publisher.sent[next]) publisher.confirm(next);
    await settle();
  }
  const result = await send.result;
  assert.equal(publisher.mostInFlight, 4);
  assert.deepEqual(
    { published: result.published, confirmed: result.confirmed, prefix: result.confirmedPrefix },
    { published: 20, confirmed: 20, prefix: 20 },
  );
  assert.equal(result.error, undefined);
  assert.deepEqual(publisher.sent.map((task) => task.body), bodies(20));
});

Deno.test("sendAll() stops taking bodies at the first failure; the prefix is exact with confirms out of order", async () => {
  const clock = new FakeClock();
  const publisher = new FakePublisher();
  const taken: number[] = [];
  function* counted() {
    for (let i = 0; i < 100; i++) {
      taken.push(i);
      yield `t${i}`;
    }
  }
  const send = start(publisher, counted(), { window: 5, clock });
  await settle();
  assert.equal(publisher.sent.length, 5);
  publisher.confirm(0);
  publisher.confirm(3);
  const failure = publisher.fail(2);
  publisher.confirm(4);
  await settle();
  publisher.confirm(1);
  const result = await send.result;
  assert.equal(result.error, failure);
  assert.equal(result.confirmedPrefix, 2, "tasks 0 and 1 confirmed, task 2 failed");
  assert.equal(result.confirmed, 4);
  assert.equal(result.published, 5, "nothing published after the failure");
  assert.ok(taken.length <= 6, `took ${taken.length} bodies`);
});

Deno.test("sendAll() keeps the earliest failure's index in the prefix when a later task failed first", async () => {
  const clock = new FakeClock();
  const publisher = new FakePublisher();
  const send = start(publisher, bodies(4), { window: 4, clock });
  await settle();
  const first = publisher.fail(3);
  publisher.fail(1);
  publisher.confirm(0);
  publisher.confirm(2);
  const result = await send.result;
  assert.equal(result.error, first, "the error reported is the first that happened");
  assert.equal(result.confirmedPrefix, 1);
  assert.equal(result.confirmed, 2);
});

Deno.test("sendAll() waits for a full channel to drain before it publishes", async () => {
  const clock = new FakeClock();
  const publisher = new FakePublisher();
  publisher.fill();
  const send = start(publisher, bodies(3), { window: 10, clock });
  await settle();
  assert.equal(publisher.sent.length, 0);
  publisher.drain();
  await settle();
  assert.equal(publisher.sent.length, 3);
  for (let i = 0; i < 3; i++) publisher.confirm(i);
  assert.equal((await send.result).confirmed, 3);
});

Deno.test("sendAll() does not publish the body it took when a task failed during the wait for drain", async () => {
  const clock = new FakeClock();
  const publisher = new FakePublisher();
  function* filling() {
    for (let i = 0; i < 10; i++) {
      // The channel's buffer is full once t2 is published: t3 waits for drain.
      if (i === 3) publisher.fill();
      yield `t${i}`;
    }
  }
  const send = start(publisher, filling(), { window: 10, clock });
  await settle();
  assert.equal(publisher.sent.length, 3);
  const failure = publisher.fail(1);
  await settle();
  publisher.drain();
  await settle();
  for (const [i, task] of publisher.sent.entries()) if (!task.settled) publisher.confirm(i);
  const result = await send.result;
  assert.equal(result.error, failure);
  assert.equal(result.confirmedPrefix, 1);
  assert.equal(publisher.sent.length, 3, "t3 was published after the failure");
  assert.equal(result.published, 3);
});

Deno.test("sendAll() stops waiting for a drain at the first failure", async () => {
  const clock = new FakeClock();
  const publisher = new FakePublisher();
  function* filling() {
    for (let i = 0; i < 10; i++) {
      if (i === 2) publisher.fill();
      yield `t${i}`;
    }
  }
  const send = start(publisher, filling(), { window: 10, clock });
  await settle();
  assert.equal(publisher.sent.length, 2);
  const failure = publisher.fail(0);
  publisher.confirm(1);
  await settle();
  // No drain ever comes, and nothing is in flight for the watchdog to time.
  const result = send.done();
  assert.ok(result, "still waiting for the drain after the failure");
  assert.equal(result.error, failure);
  assert.equal(result.published, 2);
  assert.equal(result.confirmedPrefix, 0);
});

Deno.test("sendAll() resolves after confirmTimeout when a task failed and another is never confirmed", async () => {
  const clock = new FakeClock();
  const publisher = new FakePublisher();
  const send = start(publisher, bodies(2), { confirmTimeout: 100, clock });
  await settle();
  const failure = publisher.fail(0);
  clock.advance(10_000);
  await settle();
  const result = send.done();
  assert.ok(result, "still waiting for a confirm that never comes");
  assert.equal(result.error, failure, "the first failure is the one reported");
  assert.equal(result.confirmedPrefix, 0);
  assert.deepEqual(clock.intervals, []);
});

Deno.test("sendAll() gives up on a drain that never comes once the confirms stall", async () => {
  const clock = new FakeClock();
  const publisher = new FakePublisher();
  function* filling() {
    for (let i = 0; i < 10; i++) {
      if (i === 2) publisher.fill();
      yield `t${i}`;
    }
  }
  const send = start(publisher, filling(), { confirmTimeout: 100, window: 10, clock });
  await settle();
  assert.equal(publisher.sent.length, 2);
  publisher.confirm(0);
  clock.advance(125);
  await settle();
  const result = send.done();
  assert.ok(result, "still waiting for the drain");
  assert.match(String(result.error), /No confirm from the broker for 100 ms/);
  assert.deepEqual(
    { published: result.published, confirmed: result.confirmed, prefix: result.confirmedPrefix },
    { published: 2, confirmed: 1, prefix: 1 },
  );
});

Deno.test("sendAll() checks the confirms at a period that divides confirmTimeout", async () => {
  const cases: [confirmTimeout: number, period: number][] = [
    [30_000, 1000],
    [4500, 900],
    [4000, 1000],
    [100, 25],
    [40, 10],
    [25, 25 / 3],
    [5, 5],
  ];
  for (const [confirmTimeout, period] of cases) {
    const clock = new FakeClock();
    const gate = Promise.withResolvers<void>();
    const send = sendAll(new FakePublisher(), gated(gate.promise), { confirmTimeout, clock });
    assert.deepEqual(clock.intervals, [period], `confirmTimeout ${confirmTimeout}`);
    gate.resolve();
    await send;
    assert.deepEqual(clock.intervals, []);
  }
});

Deno.test("sendAll() runs on the system clock by default and stops its timer when done", async () => {
  // The sanitizers fail this test if the watchdog interval outlives the send.
  const publisher = new FakePublisher();
  const send = start(publisher, bodies(2), {});
  await settle();
  publisher.confirm(1);
  publisher.confirm(0);
  const result = await send.result;
  assert.deepEqual(
    { published: result.published, confirmed: result.confirmed, prefix: result.confirmedPrefix },
    { published: 2, confirmed: 2, prefix: 2 },
  );
});

Deno.test("sendAll() keeps at most windowBytes of bodies in flight, however many tasks the window allows", async () => {
  const clock = new FakeClock();
  const publisher = new FakePublisher();
  const body = "x".repeat(10);
  const send = start(publisher, Array.from({ length: 6 }, () => body), {
    window: 100,
    windowBytes: 25,
    clock,
  });
  await settle();
  assert.equal(publisher.sent.length, 3, "30 bytes in flight reach the 25-byte window");
  publisher.confirm(0);
  await settle();
  assert.equal(publisher.sent.length, 3, "20 bytes: still above half the window");
  publisher.confirm(1);
  await settle();
  assert.equal(publisher.sent.length, 5, "10 bytes: refilled up to the window again");
  for (let next = 2; next < 6; next++) {
    publisher.confirm(next);
    await settle();
  }
  const result = await send.result;
  assert.equal(result.confirmed, 6);
});
