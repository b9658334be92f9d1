#!/usr/bin/env -S deno run --allow-net --allow-env=AMQP_URL
/**
 * The ceiling for draining a queue with amqplib on this broker: plain amqplib, no project code.
 * Consumes with manual acks and a prefetch of PREFETCH, acks each message as it arrives, and
 * exits once it has acked COUNT messages.
 *
 * ```sh
 * AMQP_URL=amqp://localhost:5672 ./bench/baseline_consume.ts QUEUE PREFETCH COUNT
 * ```
 *
 * Prints `consuming` when the first message arrives or the broker has confirmed the consumer,
 * whichever is first, and `consumed COUNT` after the last ack; then it closes its channel and
 * connection and exits. The bench times from `consuming` to the exit.
 *
 * @module
 */

import { connect } from "amqplib";

/** Drains the queue named in `args`; resolves with the exit code. */
export async function main(args: string[]): Promise<number> {
  const [queue, prefetch, count] = args.map((arg, i) => i === 0 ? arg : Number(arg));
  if (
    typeof queue !== "string" || queue === "" || !Number.isInteger(prefetch) ||
    !Number.isInteger(count) || Number(prefetch) < 1 || Number(count) < 1
  ) {
    console.error("Usage: baseline_consume.ts QUEUE PREFETCH COUNT");
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
    const { promise: allAcked, resolve } = Promise.withResolvers<void>();
    await channel.consume(queue, (message) => {
      start();
      if (message === null) return;
      channel.ack(message);
      if (++acked === count) resolve();
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

if (import.meta.main) Deno.exitCode = await main(Deno.args);
