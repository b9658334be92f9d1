#!/usr/bin/env -S deno run --allow-net --allow-env=AMQP_URL,TASK_QUEUE
/**
 * A worker written with the library: fetches the URL of each JSON task `{"url": "..."}` (as sent
 * by `producer.ts`) and prints its size. A task that can never work (no URL, or the server says
 * 4xx) is parked in `<queue>.dead` at once; any other failure is retried after a delay.
 *
 * ```sh
 * deno run --allow-net --allow-env=AMQP_URL,TASK_QUEUE examples/worker.ts
 * ```
 *
 * The queue is `--queue NAME`, else `$TASK_QUEUE`, else `pages`; the broker is `$AMQP_URL`.
 * Ctrl+C or SIGTERM: take no new task, finish and ack the ones in hand, exit 0.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { connect, PermanentError, type Task } from "../mod.ts";

/** Does one task: returning acks it, throwing retries it, PermanentError parks it. */
async function fetchPage(task: Task, signal: AbortSignal): Promise<void> {
  const url = urlOf(task);
  if (url === undefined) throw new PermanentError(`No http(s) URL in the task: ${task.text()}`);
  // The signal aborts when the try runs out of time.
  const response = await fetch(url, { signal });
  const bytes = (await response.arrayBuffer()).byteLength;
  if (response.status >= 400 && response.status < 500) {
    throw new PermanentError(`HTTP ${response.status} from ${url}`);
  }
  if (!response.ok) throw new Error(`HTTP ${response.status} from ${url}`);
  console.log(`${url}: ${bytes} bytes`);
}

/** The task's http or https URL, if it has one. */
function urlOf(task: Task): string | undefined {
  try {
    const { url } = task.json<{ url?: unknown }>();
    return typeof url === "string" && /^https?:\/\//.test(url) ? url : undefined;
  } catch {
    return undefined; // Not JSON: no retry can help either.
  }
}

/** Runs the worker until SIGINT or SIGTERM; resolves with the exit code. */
export async function main(args: string[]): Promise<number> {
  let queue: string;
  try {
    const { values } = parseArgs({
      args,
      options: { queue: { type: "string", default: Deno.env.get("TASK_QUEUE") ?? "pages" } },
    });
    queue = values.queue;
  } catch (error) {
    console.error(`${(error as Error).message}\nUsage: worker.ts [--queue NAME]`);
    return 2;
  }
  try {
    const connection = await connect(Deno.env.get("AMQP_URL") ?? "amqp://localhost");
    const worker = connection.createWorker(queue, fetchPage, {
      concurrency: 4,
      taskTimeout: 30_000,
    });
    worker.on("done", (event) => console.log(`Done ${event.id} in ${event.durationMs} ms`));
    worker.on("retried", (event) => console.error(`Retrying ${event.id}: ${event.reason}`));
    worker.on("dead_lettered", (event) => console.error(`Parked ${event.id}: ${event.reason}`));
    // A graceful stop takes at most the task timeout: a try still running then is given up.
    const stop = () => void worker.stop();
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
    try {
      await worker.ready;
      console.log(`Waiting for tasks on "${queue}". To exit press CTRL+C`);
      await worker.stopped;
    } finally {
      Deno.removeSignalListener("SIGINT", stop);
      Deno.removeSignalListener("SIGTERM", stop);
      await connection.close();
    }
  } catch (error) {
    console.error((error as Error).message);
    return 1;
  }
  return 0;
}

if (import.meta.main) Deno.exitCode = await main(Deno.args);
