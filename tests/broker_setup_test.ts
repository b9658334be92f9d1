import assert from "node:assert/strict";
import { ensureBroker, isDefaultLocalUrl } from "../demo/broker_setup.ts";
import { AmqpError } from "../lib/broker/errors.ts";
import { displayUrl } from "../lib/broker/url.ts";
import { BROKER_URL } from "./_helpers.ts";

Deno.test("ensureBroker() says the broker answers and starts nothing when it does", async () => {
  const lines: string[] = [];
  await ensureBroker(BROKER_URL, { onProgress: (line) => lines.push(line) });
  assert.deepEqual(lines, [`Broker: ${displayUrl(BROKER_URL)} answers.`]);
});

Deno.test("ensureBroker() starts no broker away from amqp://localhost:5672", async () => {
  const lines: string[] = [];
  await assert.rejects(
    ensureBroker("amqp://someone:s3cret@127.0.0.1:1", { onProgress: (line) => lines.push(line) }),
    (error) => {
      assert.ok(error instanceof AmqpError);
      assert.equal(
        error.message,
        `Cannot connect to "amqp://127.0.0.1:1": connection refused; ` +
          `the demo starts a broker only at amqp://localhost:5672`,
      );
      assert.equal(error.code, "ECONNREFUSED");
      return true;
    },
  );
  assert.deepEqual(lines, []);
});

Deno.test("ensureBroker() passes on a wrong password: starting a broker would not fix it", async () => {
  const url = new URL(BROKER_URL);
  url.username = "guest";
  url.password = `wrong-${crypto.randomUUID()}`;
  const lines: string[] = [];
  await assert.rejects(
    ensureBroker(url.href, { onProgress: (line) => lines.push(line) }),
    (error) => {
      assert.ok(error instanceof AmqpError);
      assert.match(error.message, /access refused/);
      assert.ok(!error.message.includes(url.password), "no password in the message");
      return true;
    },
  );
  assert.deepEqual(lines, []);
});

Deno.test("ensureBroker() rejects with the reason of an aborted signal before connecting", async () => {
  const stop = new AbortController();
  const reason = new Error("Stopped");
  stop.abort(reason);
  const lines: string[] = [];
  await assert.rejects(
    ensureBroker(BROKER_URL, { signal: stop.signal, onProgress: (line) => lines.push(line) }),
    (error) => error === reason,
  );
  assert.deepEqual(lines, []);
});

Deno.test("ensureBroker() rejects a bad URL with TypeError and a bad readyTimeout with RangeError", async () => {
  await assert.rejects(ensureBroker("http://localhost"), TypeError);
  await assert.rejects(ensureBroker(BROKER_URL, { readyTimeout: -1 }), RangeError);
  await assert.rejects(ensureBroker(BROKER_URL, { readyTimeout: NaN }), RangeError);
});

Deno.test("isDefaultLocalUrl() is true only for plain AMQP on local port 5672", () => {
  const cases: Array<[string, boolean]> = [
    ["amqp://localhost", true],
    ["amqp://localhost:5672", true],
    ["amqp://guest:guest@127.0.0.1:5672/", true],
    ["amqp://[::1]:5672", true],
    ["amqps://localhost", false],
    ["amqp://localhost:5673", false],
    ["amqp://127.0.0.1:1", false],
    ["amqp://rabbit:5672", false],
  ];
  for (const [url, expected] of cases) assert.equal(isDefaultLocalUrl(url), expected, url);
});
