/**
 * A handler module for `worker.ts --handler`: fetches the URL a task names, either the JSON task
 * `{"url": "..."}` of `producer.ts` or a plain-text URL sent with `deno task send`, and prints its
 * size. The worker runs it in its own process, with its own flags, retries and output.
 *
 * ```sh
 * deno task worker --queue pages --handler examples/handler.ts
 * deno task send --queue pages https://deno.com/
 * ```
 *
 * @module
 */

import { PermanentError, type Task } from "../mod.ts";

/** Does one task: returning acks it, throwing retries it, PermanentError parks it. */
export default async function fetchPage(task: Task, signal: AbortSignal): Promise<void> {
  const url = urlOf(task);
  if (url === undefined) throw new PermanentError(`No http(s) URL in the task: ${task.text()}`);
  const response = await fetch(url, { signal });
  const bytes = (await response.arrayBuffer()).byteLength;
  if (response.status >= 400 && response.status < 500) {
    throw new PermanentError(`HTTP ${response.status} from ${url}`);
  }
  if (!response.ok) throw new Error(`HTTP ${response.status} from ${url}`);
  console.log(`${url}: ${bytes} bytes`);
}

/** The task's http or https URL, if it has one: the JSON task's `url`, or the text itself. */
function urlOf(task: Task): string | undefined {
  let url: unknown;
  try {
    url = task.contentType === "application/json"
      ? task.json<{ url?: unknown }>().url
      : task.text().trim();
  } catch {
    return undefined; // Not JSON: no retry can help either.
  }
  return typeof url === "string" && /^https?:\/\//.test(url) ? url : undefined;
}
