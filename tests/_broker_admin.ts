/**
 * Changes to the shared broker for fault tests, each paired with its undo. Tests that use these
 * run serially (deno test runs files one after another, and tests in a file in order) and
 * restore the broker in `finally`.
 *
 * @module
 */

import { setTimeout as sleep } from "node:timers/promises";

/** Runs `rabbitmqctl` with `args` and returns its stdout; throws on failure. */
export async function rabbitmqctl(...args: string[]): Promise<string> {
  const { success, stdout, stderr } = await new Deno.Command("rabbitmqctl", { args }).output();
  const text = new TextDecoder().decode(stdout).trim();
  if (!success) {
    throw new Error(`rabbitmqctl ${args.join(" ")} failed: ${new TextDecoder().decode(stderr)}`);
  }
  return text;
}

/** Evaluates an Erlang expression on the broker node. */
export function brokerEval(expression: string): Promise<string> {
  return rabbitmqctl("eval", expression);
}

/** Sets a `rabbit` application setting; the returned function restores the old value. */
export async function setBrokerSetting(key: string, value: string): Promise<() => Promise<void>> {
  const before = await brokerEval(`application:get_env(rabbit, ${key}).`);
  await brokerEval(`application:set_env(rabbit, ${key}, ${value}).`);
  let restored = false;
  return async () => {
    if (restored) return;
    restored = true;
    const match = /^\{ok,(.*)\}$/s.exec(before);
    await brokerEval(
      match
        ? `application:set_env(rabbit, ${key}, ${match[1]}).`
        : `application:unset_env(rabbit, ${key}).`,
    );
  };
}

/** Sets a `rabbit` application setting for the duration of `fn`, then restores it. */
export async function withBrokerSetting<T>(
  key: string,
  value: string,
  fn: () => Promise<T>,
): Promise<T> {
  const restore = await setBrokerSetting(key, value);
  try {
    return await fn();
  } finally {
    await restore();
  }
}

/** Raises the memory alarm (the broker blocks publishers); the returned function clears it. */
export async function raiseMemoryAlarm(): Promise<() => Promise<void>> {
  const before = await brokerEval("vm_memory_monitor:get_vm_memory_high_watermark().");
  await rabbitmqctl("set_vm_memory_high_watermark", "0.0000001");
  return async () => {
    await brokerEval(`vm_memory_monitor:set_vm_memory_high_watermark(${before}).`);
  };
}

/** Whether the broker accepts AMQP connections on 127.0.0.1:5672. */
export async function brokerAnswers(): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: 5672 });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

/** Stops the RabbitMQ application (the node stays up, connections drop); `start` brings it back. */
export async function stopBroker(): Promise<void> {
  await rabbitmqctl("stop_app");
}

/** Starts the RabbitMQ application and waits until it accepts connections. */
export async function startBroker(timeout = 60_000): Promise<void> {
  await rabbitmqctl("start_app");
  await rabbitmqctl("await_startup", "--timeout", String(Math.ceil(timeout / 1000)));
  const deadline = Date.now() + timeout;
  while (!(await brokerAnswers())) {
    if (Date.now() > deadline) throw new Error("RabbitMQ did not come back");
    await sleep(100);
  }
}

/** A TLS listener added to the running broker, with the CA that signed its certificate. */
export interface TlsListener extends AsyncDisposable {
  port: number;
  /** PEM file of the test CA. */
  caFile: string;
}

async function openssl(...args: string[]): Promise<void> {
  const { success, stderr } = await new Deno.Command("openssl", { args }).output();
  if (!success) throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(stderr)}`);
}

/**
 * Makes a throwaway CA and a certificate for localhost/127.0.0.1 signed by it, and opens an
 * AMQPS listener on the broker with them. Disposing it closes the listener and deletes the files.
 */
export async function startTlsListener(port = 5671): Promise<TlsListener> {
  const dir = await Deno.makeTempDir({ prefix: "workqueue_tls_" });
  const file = (name: string) => `${dir}/${name}`;
  try {
    await openssl(
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=workqueue test CA",
      "-keyout",
      file("ca.key"),
      "-out",
      file("ca.pem"),
    );
    await openssl(
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-subj",
      "/CN=localhost",
      "-keyout",
      file("server.key"),
      "-out",
      file("server.csr"),
    );
    await Deno.writeTextFile(file("ext.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
    await openssl(
      "x509",
      "-req",
      "-days",
      "1",
      "-in",
      file("server.csr"),
      "-CA",
      file("ca.pem"),
      "-CAkey",
      file("ca.key"),
      "-CAcreateserial",
      "-extfile",
      file("ext.cnf"),
      "-out",
      file("server.pem"),
    );
    // The broker runs as its own user and must read the certificate and key.
    await Deno.chmod(dir, 0o755);
    for (const name of ["ca.pem", "server.pem", "server.key"]) await Deno.chmod(file(name), 0o644);
    await brokerEval(
      `rabbit_networking:start_ssl_listener(${port}, [{cacertfile, "${
        file("ca.pem")
      }"}, {certfile, "${file("server.pem")}"}, {keyfile, "${
        file("server.key")
      }"}, {verify, verify_none}, {fail_if_no_peer_cert, false}], 1).`,
    );
  } catch (error) {
    await Deno.remove(dir, { recursive: true });
    throw error;
  }
  return {
    port,
    caFile: file("ca.pem"),
    async [Symbol.asyncDispose]() {
      await brokerEval(`rabbit_networking:stop_tcp_listener(${port}).`);
      await Deno.remove(dir, { recursive: true });
    },
  };
}
