#!/usr/bin/env -S deno run --allow-net --allow-env=AMQP_URL
/**
 * A reference for the one-shot send, not a baseline: plain amqplib with the duties every producer
 * of ours has and the plain one-shot leaves out, done the shortest way. It parses a command line of
 * `new_task.ts`'s sixteen flags with `node:util` parseArgs, gives the task an id and a timestamp,
 * names its connection, asks for heartbeats, and fails when no confirm comes within 30 s; then,
 * as the plain one-shot, connects, declares the durable queue, publishes one persistent, mandatory
 * message on a confirm channel, waits for its confirm and closes. No project code; one module.
 * The bench times it beside the plain one-shot and ours, so that the cost of those duties and the
 * cost of everything else in ours (loading its modules and running its checks) read apart.
 *
 * ```sh
 * AMQP_URL=amqp://localhost:5672 ./bench/reference_one_shot.ts --queue QUEUE [MESSAGE...]
 * ```
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { parseArgs } from "node:util";
import { connect } from "amqplib";

const STRING_FLAGS = [
  "url",
  "url-file",
  "queue",
  "queue-type",
  "window",
  "wait-timeout",
  "confirm-timeout",
  "delay",
  "at",
  "heartbeat",
  "ca",
];
const BOOLEAN_FLAGS = ["allow-lossy-queue", "stdin", "wait", "json", "help"];

/** Sends one message as `args` say; resolves with the exit code. */
export async function main(args: string[]): Promise<number> {
  const options: Record<string, { type: "string" | "boolean" }> = {};
  for (const name of STRING_FLAGS) options[name] = { type: "string" };
  for (const name of BOOLEAN_FLAGS) options[name] = { type: "boolean" };
  let parsed;
  try {
    parsed = parseArgs({ args, options, strict: true, allowPositionals: true });
  } catch (error) {
    console.error(`Usage: reference_one_shot.ts --queue QUEUE [MESSAGE...]: ${error}`);
    return 2;
  }
  const queue = parsed.values.queue;
  if (typeof queue !== "string") {
    console.error("Usage: reference_one_shot.ts --queue QUEUE [MESSAGE...]");
    return 2;
  }
  const message = parsed.positionals.join(" ") || "Hello World!";
  const url = new URL(Deno.env.get("AMQP_URL") ?? "amqp://localhost:5672");
  url.searchParams.set("heartbeat", "15");
  const connection = await connect(url.href, {
    noDelay: true,
    clientProperties: { connection_name: `reference_one_shot.ts pid ${Deno.pid}` },
  });
  try {
    const channel = await connection.createConfirmChannel();
    await channel.assertQueue(queue, { durable: true });
    const properties = {
      persistent: true,
      mandatory: true,
      messageId: crypto.randomUUID(),
      timestamp: Math.floor(Date.now() / 1000),
    };
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no confirm within 30 s")), 30_000);
      channel.sendToQueue(queue, Buffer.from(message), properties, (error: unknown) => {
        clearTimeout(timer);
        if (error) reject(error);
        else resolve();
      });
    });
    console.log(` [x] Sent '${message}'`);
    return 0;
  } finally {
    await connection.close();
  }
}

if (import.meta.main) Deno.exitCode = await main(Deno.args);
