#!/usr/bin/env -S deno run --allow-net --allow-env=AMQP_URL,TASK_QUEUE
/**
 * A producer written with the library: sends each URL it is given as the JSON task
 * `{"url": "..."}`, prints the task's id once the broker has confirmed it, and closes.
 *
 * ```sh
 * deno run --allow-net --allow-env=AMQP_URL,TASK_QUEUE examples/producer.ts https://deno.com/
 * ```
 *
 * The queue is `--queue NAME`, else `$TASK_QUEUE`, else `pages`; the broker is `$AMQP_URL`.
 * Exit codes: 0 all sent, 1 the broker could not be reached or refused a task, 2 bad arguments.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { connect } from "../mod.ts";

/** Sends the URLs in `args` as tasks; resolves with the exit code. */
export async function main(args: string[]): Promise<number> {
  let queue: string, urls: string[];
  try {
    const { values, positionals } = parseArgs({
      args,
      options: { queue: { type: "string", default: Deno.env.get("TASK_QUEUE") ?? "pages" } },
      allowPositionals: true,
    });
    [queue, urls] = [values.queue, positionals];
    if (urls.length === 0) throw new Error("No URL given");
  } catch (error) {
    console.error(`${(error as Error).message}\nUsage: producer.ts [--queue NAME] URL...`);
    return 2;
  }
  try {
    const connection = await connect(Deno.env.get("AMQP_URL") ?? "amqp://localhost");
    try {
      const producer = await connection.createProducer(queue);
      for (const url of urls) {
        // Resolves once the broker has the task on disk.
        const id = await producer.sendJson({ url });
        console.log(`Sent ${id} ${url}`);
      }
    } finally {
      await connection.close();
    }
  } catch (error) {
    console.error((error as Error).message);
    return 1;
  }
  return 0;
}

if (import.meta.main) Deno.exitCode = await main(Deno.args);
