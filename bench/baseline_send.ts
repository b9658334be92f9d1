#!/usr/bin/env -S deno run --allow-net --allow-env=AMQP_URL
/**
 * The ceiling for bulk sending with amqplib on this broker: the fastest plain amqplib program
 * that keeps the producer's guarantees, with no project code. It reads stdin whole, splits it into
 * lines with a loop over the bytes, and publishes every non-empty line in one synchronous loop as
 * a persistent, mandatory message on a confirm channel, then waits for every confirm; a nack or a
 * returned (unroutable) message is a failure, exit 1. No window, no ids, no promise per task.
 *
 * `--no-mandatory` leaves mandatory out, to show what it costs the broker.
 *
 * ```sh
 * seq 20000 | AMQP_URL=amqp://localhost:5672 ./bench/baseline_send.ts QUEUE [--no-mandatory]
 * ```
 *
 * The bench also fills queues with it.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { connect } from "amqplib";

/** Sends stdin's lines to the queue named in `args`; resolves with the exit code. */
export async function main(args: string[]): Promise<number> {
  const [queue, flag] = args;
  if (!queue || (flag !== undefined && flag !== "--no-mandatory")) {
    console.error("Usage: baseline_send.ts QUEUE [--no-mandatory]");
    return 2;
  }
  const mandatory = flag === undefined;
  const input = Buffer.from(await new Response(Deno.stdin.readable).arrayBuffer());
  const connection = await connect(Deno.env.get("AMQP_URL") ?? "amqp://localhost:5672", {
    noDelay: true,
  });
  try {
    const channel = await connection.createConfirmChannel();
    await channel.assertQueue(queue, { durable: true });
    let returned = 0;
    channel.on("return", () => returned++);
    const options = { persistent: true, mandatory };
    let sent = 0;
    let start = 0;
    for (let i = 0; i <= input.length; i++) {
      if (i < input.length && input[i] !== 0x0a) continue;
      if (i > start) {
        channel.sendToQueue(queue, input.subarray(start, i), options);
        sent++;
      }
      start = i + 1;
    }
    await channel.waitForConfirms();
    if (returned > 0) throw new Error(`${returned} messages came back unroutable`);
    console.log(`Sent ${sent}`);
    return 0;
  } finally {
    await connection.close();
  }
}

if (import.meta.main) Deno.exitCode = await main(Deno.args);
