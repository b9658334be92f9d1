/**
 * Changes to the shared broker for fault tests, each paired with its undo. Tests that use these
 * run serially (deno test runs files one after another, and tests in a file in order) and
 * restore the broker in `finally`. The broker and the `rabbitmqctl` that reaches it come from
 * the environment (see `_helpers.ts`).
 *
 * @module
 */

import { setTimeout as sleep } from "node:timers/promises";
import { BROKER_URL, MANAGEMENT_URL, rabbitmqctl } from "./_helpers.ts";

export { rabbitmqctl };

/**
 * Evaluates an Erlang expression on the broker node. No `$` in it: Debian's `rabbitmqctl`, run as
 * root, hands its arguments to `sh -c`.
 */
export function brokerEval(expression: string): Promise<string> {
  return rabbitmqctl("eval", expression);
}

/** The broker's version, as numbers: `[4, 3, 6]`. */
export async function brokerVersion(): Promise<number[]> {
  const text = await brokerEval("rabbit_misc:version().");
  return text.replace(/"/g, "").split(/[.+-]/).map(Number).filter((n) => !Number.isNaN(n));
}

/** Whether `version` (from {@linkcode brokerVersion}) is `major.minor` or later. */
export function atLeast(version: number[], major: number, minor = 0): boolean {
  const [have = 0, haveMinor = 0] = version;
  return have > major || (have === major && haveMinor >= minor);
}

/**
 * Sets a `rabbit` application setting; the returned function restores the old value. Settings
 * the broker copies into a persistent term of the same name at boot, and reads from there (4.x
 * does so with `max_message_size`), are set in both places.
 */
export async function setBrokerSetting(key: string, value: string): Promise<() => Promise<void>> {
  const before = await brokerEval(
    `{application:get_env(rabbit, ${key}), persistent_term:get(${key}, undefined)}.`,
  );
  await brokerEval(
    `application:set_env(rabbit, ${key}, ${value}), ` +
      `case persistent_term:get(${key}, undefined) of undefined -> ok; ` +
      `_ -> persistent_term:put(${key}, ${value}) end.`,
  );
  let restored = false;
  return async () => {
    if (restored) return;
    restored = true;
    // The printed terms are Erlang again: {{ok,Value} | undefined, Term | undefined}.
    await brokerEval(
      `{Env, Term} = ${before}, ` +
        `case Env of {ok, V} -> application:set_env(rabbit, ${key}, V); ` +
        `undefined -> application:unset_env(rabbit, ${key}) end, ` +
        `case Term of undefined -> ok; _ -> persistent_term:put(${key}, Term) end.`,
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

/** Whether the test broker accepts TCP connections on its AMQP port. */
export async function brokerAnswers(): Promise<boolean> {
  const url = new URL(BROKER_URL.split(",")[0]!);
  const port = Number(url.port || (url.protocol === "amqps:" ? 5671 : 5672));
  try {
    const conn = await Deno.connect({ hostname: url.hostname.replace(/^\[|\]$/g, ""), port });
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

/**
 * Runs `fn` with the URL of the broker's management API once it answers: `TEST_MANAGEMENT_URL`
 * when set (the plugin is on there already), else the local broker's, at 127.0.0.1:15672, whose
 * plugin is enabled with `rabbitmq-plugins` for `fn` and disabled again after it.
 */
export async function withManagementApi<T>(fn: (url: string) => Promise<T>): Promise<T> {
  const url = MANAGEMENT_URL ?? "http://127.0.0.1:15672";
  const plugins = (...args: string[]) => new Deno.Command("rabbitmq-plugins", { args }).output();
  if (MANAGEMENT_URL === undefined) {
    await rabbitmqctl("eval", "ok."); // the broker is up
    const enable = await plugins("enable", "rabbitmq_management");
    if (!enable.success) {
      throw new Error(`rabbitmq-plugins enable failed: ${new TextDecoder().decode(enable.stderr)}`);
    }
  }
  try {
    const deadline = Date.now() + 30_000;
    while (!(await answers(`${url}/api/overview`))) {
      if (Date.now() > deadline) throw new Error(`No management API at ${url} within 30 s`);
      await sleep(200);
    }
    return await fn(url);
  } finally {
    if (MANAGEMENT_URL === undefined) {
      await plugins(
        "disable",
        "rabbitmq_management",
        "rabbitmq_management_agent",
        "rabbitmq_web_dispatch",
      );
    }
  }
}

async function answers(url: string): Promise<boolean> {
  const { username, password } = new URL(BROKER_URL.split(",")[0]!);
  const credentials = `${decodeURIComponent(username) || "guest"}:${
    decodeURIComponent(password) || "guest"
  }`;
  try {
    const response = await fetch(url, { headers: { authorization: `Basic ${btoa(credentials)}` } });
    await response.body?.cancel();
    return response.ok;
  } catch {
    return false;
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

/** A TCP port nothing listens on now. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/**
 * Makes a throwaway CA and a certificate for localhost/127.0.0.1 signed by it, and opens an
 * AMQPS listener on the broker with them, on `port` or a free one. The broker reads the files
 * from this machine's temporary directory. Disposing it closes the listener and deletes the files.
 */
export async function startTlsListener(port = freePort()): Promise<TlsListener> {
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
