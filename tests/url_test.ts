import assert from "node:assert/strict";
import { describeError } from "../lib/broker/errors.ts";
import { displayUrl, parseAmqpUrl, redactSecrets } from "../lib/broker/url.ts";

Deno.test("displayUrl() shows scheme, host, port and vhost, never the credentials", () => {
  assert.equal(displayUrl("amqp://user:secret@rabbit/prod"), "amqp://rabbit:5672/prod");
  assert.equal(displayUrl("amqps://user:secret@rabbit"), "amqps://rabbit:5671");
  assert.equal(displayUrl("amqp://localhost:5673/"), "amqp://localhost:5673");
});

Deno.test("redactSecrets() removes user:password@ from every URL in a text", () => {
  assert.equal(
    redactSecrets('Cannot reach amqp://bob:pw@a:1 or "amqps://x:y@b/v" now'),
    'Cannot reach amqp://a:1 or "amqps://b/v" now',
  );
  const error = new Error("failed for amqp://bob:hunter2@host\n    at somewhere (file.ts:1:1)");
  assert.equal(describeError(error), "failed for amqp://host", "one line, redacted");
});

Deno.test("parseAmqpUrl() accepts amqp:// and amqps:// and rejects anything else with a TypeError", () => {
  assert.equal(parseAmqpUrl("amqp://localhost").hostname, "localhost");
  assert.equal(parseAmqpUrl("amqps://h:5671/v").port, "5671");
  assert.throws(() => parseAmqpUrl("localhost:5672"), TypeError);
  assert.throws(() => parseAmqpUrl("http://localhost"), {
    name: "TypeError",
    message: /amqp:\/\/ or amqps:\/\//,
  });
  assert.throws(() => parseAmqpUrl("not a url"), TypeError);
  assert.throws(
    () => parseAmqpUrl("amqp://u:pw@"),
    (error: Error) => !error.message.includes("pw"),
  );
});
