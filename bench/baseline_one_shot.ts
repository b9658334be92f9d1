#!/usr/bin/env -S deno run --allow-net --allow-env=AMQP_URL
/**
 * The floor for a one-shot send with amqplib: plain amqplib, no project code. Connects, declares
 * the durable queue, publishes one persistent, mandatory message on a confirm channel, waits for the
 * confirm, closes.
 *
 * ```sh
 * AMQP_URL=amqp://localhost:5672 ./bench/baseline_one_shot.ts QUEUE [MESSAGE]
 * ```
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { connect } from "amqplib";

/** Sends one message to the queue named in `args`; resolves with the exit code. */
export async function main(args: string[]): Promise<number> {
  const [queue, message = "Hello World!"] = args;
  if (!queue) {
    console.error("Usage: baseline_one_shot.ts QUEUE [MESSAGE]");
    return 2;
  }
  const connection = await connect(Deno.env.get("AMQP_URL") ?? "amqp://localhost:5672", {
    noDelay: true,
  });
  try {
    const channel = await connection.createConfirmChannel();
    await channel.assertQueue(queue, { durable: true });
    channel.sendToQueue(queue, Buffer.from(message), { persistent: true, mandatory: true });
    await channel.waitForConfirms();
    console.log(` [x] Sent '${message}'`);
    return 0;
  } finally {
    await connection.close();
  }
}

if (import.meta.main) Deno.exitCode = await main(Deno.args);
