#!/usr/bin/env -S deno run --allow-net --allow-env=AMQP_URL --allow-run=setsid
/**
 * The ceiling for draining a queue with amqplib on this broker: plain amqplib, no project code.
 * Consumes with manual acks and a prefetch of PREFETCH, acks each message as it arrives, and
 * exits once it has acked COUNT messages. With `--exec CMD`, each message is first handed to a
 * process of its own, `sh -c CMD` with the body on its stdin, and acked when it exits 0; with the
 * guarantees `worker.ts --exec` keeps, in the plainest way: the command runs in a session of its
 * own (setsid(1), so that a timeout could stop all it started), without the broker's address in
 * its environment, and its output is read as it comes (and dropped) rather than gathered until
 * it exits or passed raw to a terminal.
 *
 * ```sh
 * AMQP_URL=amqp://localhost:5672 ./bench/baseline_consume.ts QUEUE PREFETCH COUNT [--exec CMD]
 * ```
 *
 * Prints `consuming` when the first message arrives or the broker has confirmed the consumer,
 * whichever is first, and `consumed COUNT` after the last ack; then it closes its channel and
 * connection and exits. The bench times from `consuming` to the exit.
 *
 * @module
 */

import { connect, type ConsumeMessage } from "amqplib";

/** Drains the queue named in `args`; resolves with the exit code. */
export async function main(args: string[]): Promise<number> {
  const [queue, prefetch, count] = args.slice(0, 3).map((arg, i) => i === 0 ? arg : Number(arg));
  const [flag, command, ...rest] = args.slice(3);
  if (
    typeof queue !== "string" || queue === "" || !Number.isInteger(prefetch) ||
    !Number.isInteger(count) || Number(prefetch) < 1 || Number(count) < 1 ||
    (flag !== undefined && (flag !== "--exec" || !command)) || rest.length > 0
  ) {
    console.error("Usage: baseline_consume.ts QUEUE PREFETCH COUNT [--exec CMD]");
    return 2;
  }
  const connection = await connect(Deno.env.get("AMQP_URL") ?? "amqp://localhost:5672", {
    noDelay: true,
  });
  try {
    const channel = await connection.createChannel();
    await channel.assertQueue(queue, { durable: true });
    await channel.prefetch(Number(prefetch));
    let started = false;
    const start = () => {
      if (started) return;
      started = true;
      console.log("consuming");
    };
    let acked = 0;
    const { promise: allAcked, resolve, reject } = Promise.withResolvers<void>();
    const done = (message: ConsumeMessage) => {
      channel.ack(message);
      if (++acked === count) resolve();
    };
    await channel.consume(queue, (message) => {
      start();
      if (message === null) return;
      if (command === undefined) return done(message);
      run(command, message.content).then((ok) => {
        if (ok) done(message);
        else reject(new Error(`sh -c ${command} failed`));
      }, reject);
    });
    start();
    await allAcked;
    console.log(`consumed ${acked}`);
    await channel.close();
    return 0;
  } finally {
    await connection.close();
  }
}

/** Runs `sh -c command` with `body` on its stdin; resolves with whether it exited 0. */
async function run(command: string, body: Uint8Array): Promise<boolean> {
  const child = new Deno.Command("setsid", {
    args: ["sh", "-c", `unset AMQP_URL; ${command}`],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(body).catch(() => {});
  await writer.close().catch(() => {});
  // Read as it comes, so that a chatty command cannot fill the memory (output() would gather it
  // all until the command exits), and dropped.
  const drop = async (output: ReadableStream<Uint8Array>) => {
    for await (const _ of output);
  };
  await Promise.all([drop(child.stdout), drop(child.stderr)]);
  return (await child.status).success;
}

if (import.meta.main) Deno.exitCode = await main(Deno.args);
