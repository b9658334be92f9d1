#!/usr/bin/env -S deno run --allow-net --allow-env=AMQP_URL
/**
 * The ceiling for bulk sending with amqplib on this broker: plain amqplib, no project code. Reads
 * one task per non-empty line of stdin and publishes each as a persistent, mandatory message on a
 * confirm channel, with at most WINDOW published but unconfirmed, waiting on "drain" when the
 * socket's buffer is full. Exits 0 once every message is confirmed.
 *
 * Mandatory, as the producer must publish (an unroutable task has to come back as a failure, not
 * vanish with a confirm): the broker's side of it costs about a fifth of the rate on RabbitMQ
 * 3.10, and a ceiling without it would charge that to our code.
 *
 * ```sh
 * seq 20000 | AMQP_URL=amqp://localhost:5672 ./bench/baseline_send.ts QUEUE [WINDOW]
 * ```
 *
 * The bench also fills queues with it.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { once } from "node:events";
import { connect } from "amqplib";

/** Sends stdin's lines to the queue named in `args`; resolves with the exit code. */
export async function main(args: string[]): Promise<number> {
  const [queue, windowText = "1000"] = args;
  const window = Number(windowText);
  if (!queue || !Number.isInteger(window) || window < 1) {
    console.error("Usage: baseline_send.ts QUEUE [WINDOW]");
    return 2;
  }
  const connection = await connect(Deno.env.get("AMQP_URL") ?? "amqp://localhost:5672", {
    noDelay: true,
  });
  try {
    const channel = await connection.createConfirmChannel();
    await channel.assertQueue(queue, { durable: true });
    let unconfirmed = 0;
    let failed: unknown;
    let room: (() => void) | undefined;
    const confirmed = (error: unknown) => {
      unconfirmed--;
      if (error) failed ??= error;
      room?.();
      room = undefined;
    };
    let sent = 0;
    for await (const line of lines(Deno.stdin.readable)) {
      while (unconfirmed >= window) await new Promise<void>((resolve) => room = resolve);
      unconfirmed++;
      sent++;
      if (
        !channel.sendToQueue(
          queue,
          Buffer.from(line),
          { persistent: true, mandatory: true },
          confirmed,
        )
      ) {
        await once(channel, "drain");
      }
    }
    await channel.waitForConfirms();
    if (failed !== undefined) throw failed;
    console.log(`Sent ${sent}`);
    return 0;
  } finally {
    await connection.close();
  }
}

async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    const parts = (rest + chunk).split("\n");
    rest = parts.pop() ?? "";
    for (const line of parts) if (line !== "") yield line;
  }
  if (rest !== "") yield rest;
}

if (import.meta.main) Deno.exitCode = await main(Deno.args);
