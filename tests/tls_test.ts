import assert from "node:assert/strict";
import { startTlsListener } from "./_broker_admin.ts";
import { onBrokerHost, openBroker, runScript, startScript, uniqueQueue } from "./_helpers.ts";

Deno.test(
  onBrokerHost(
    "amqps:// verifies the broker's certificate: refused without its CA, sent and worked with --ca",
    "the broker must read certificate files from this machine's /tmp",
  ),
  async () => {
    const queue = uniqueQueue("tls");
    await using broker = await openBroker();
    try {
      await using tls = await startTlsListener();
      const url = `amqps://guest:guest@localhost:${tls.port}`;
      const untrusted = await runScript("new_task.ts", ["--queue", queue, "Secret."], {
        env: { AMQP_URL: url },
      });
      assert.equal(untrusted.code, 1);
      assert.match(
        untrusted.stderr,
        new RegExp(
          `^Cannot connect to "amqps://localhost:${tls.port}": the broker's TLS certificate is not trusted \\([A-Z_]+\\): pass its CA certificate with --ca FILE$`,
        ),
      );
      const sent = await runScript(
        "new_task.ts",
        ["--queue", queue, "--ca", tls.caFile, "Secret."],
        {
          env: { AMQP_URL: url },
        },
      );
      assert.equal(sent.code, 0, sent.stderr);
      await using worker = startScript("worker.ts", ["--queue", queue, "--dot-ms", "1"], {
        env: { AMQP_URL: url, AMQP_CA_FILE: tls.caFile },
      });
      await worker.waitForLines(/^ \[x\] Done$/);
      assert.deepEqual(worker.matching(/Received/), [" [x] Received 'Secret.'"]);
      worker.kill("SIGINT");
      assert.equal((await worker.status()).code, 0);
    } finally {
      await broker.deleteQueues(queue);
    }
  },
);

Deno.test("--ca with a missing or non-PEM file is a usage error (exit 2)", async () => {
  const missing = await runScript("new_task.ts", ["--ca", "/nonexistent/ca.pem", "x"]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /^Cannot read CA file "\/nonexistent\/ca\.pem": /);
  const notPem = await runScript("worker.ts", ["--ca", "deno.json"]);
  assert.equal(notPem.code, 2);
  assert.match(notPem.stderr, /^Cannot use CA file "deno\.json": no PEM certificate in it/);
});
