/**
 * What a worker says: the tutorial's lines for people, one JSON object per line for machines,
 * and a periodic summary. The one place worker events become text.
 *
 * @module
 */

import type { WorkerEvent } from "../consume/worker.ts";
import { escapeText } from "./parked_format.ts";

/** The most characters of a body a ` [x] Received` line shows. */
export const PREVIEW_CHARS = 200;

// Anything a terminal could act on: C0/C1 controls, bidi overrides and other format characters.
const UNSAFE = /[\p{Cc}\p{Cf}\p{Co}\p{Cs}\p{Zl}\p{Zp}]/u;

/** `text` as it may reach a terminal: control and format characters escaped (`\u{1b}`). */
export function terminalSafe(text: string): string {
  return UNSAFE.test(text) ? escapeText(text) : text;
}

/**
 * A task body as it can be shown on one line: UTF-8 text with anything unsafe escaped, cut after
 * {@linkcode PREVIEW_CHARS} characters with the full size shown; other bytes as their size.
 */
export function preview(body: Uint8Array): string {
  // Only the start is decoded: a 5 MB task costs no more to show than a short one.
  const head = body.subarray(0, PREVIEW_CHARS * 4 + 4);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(head, {
      stream: head.length < body.length,
    });
  } catch {
    return `<${body.length} bytes>`;
  }
  const chars = [...text];
  if (chars.length <= PREVIEW_CHARS && head.length === body.length) return terminalSafe(text);
  return `${terminalSafe(chars.slice(0, PREVIEW_CHARS).join(""))}... (${body.length} bytes)`;
}

/**
 * The human log line for a worker event, or undefined for events people need not see; `tries`
 * is the most tries a task gets.
 */
export function describeEvent(event: WorkerEvent, tries: number): string | undefined {
  switch (event.type) {
    case "received":
      return ` [x] Received '${preview(event.body)}'` +
        (event.attempt > 1 ? ` (attempt ${event.attempt} of ${tries})` : "");
    case "done":
      return " [x] Done";
    case "retried":
      return ` [!] Task ${terminalSafe(event.id)} failed (${
        terminalSafe(event.reason)
      }), attempt ${event.attempt} of ${tries}; retrying in ${event.delayMs} ms`;
    case "dead_lettered":
      return ` [!] Task ${terminalSafe(event.id)} failed (${
        terminalSafe(event.reason)
      }) after ${event.attempts} attempts; parked in ${terminalSafe(event.queue)}`;
    case "held":
      return ` [!] Task ${terminalSafe(event.id)} failed (${
        terminalSafe(event.reason)
      }); held unacked, trying to park it again in ${event.retryInMs} ms`;
    case "warning":
      return terminalSafe(event.message);
    case "connection_lost":
      return `Lost the connection to the broker (${event.reason}); reconnecting`;
    case "reconnecting":
      return `Reconnecting to ${event.url} (attempt ${event.attempt}) in ${event.delay} ms: ${event.reason}`;
    case "reconnected":
      return `Reconnected to ${event.url}; consuming again`;
    case "channel_lost":
      return `The broker closed the channel (${event.reason}); opening a new one`;
    case "consumer_cancelled":
      // RabbitMQ says no reason with a cancel; these are the two it has (4.3+ cancels on a quorum
      // queue where earlier versions closed the channel).
      return "The broker cancelled the consumer (the queue was deleted, or a task outlasted the " +
        "broker's consumer_timeout); declaring the queue again";
    case "stale_delivery":
      return `Task ${
        terminalSafe(event.id)
      } finished after its channel was lost; the broker will redeliver it`;
    case "consuming":
    case "state":
      return undefined;
  }
}

/** Whether a human line for `event` belongs on stdout (the tutorial's lines) or stderr. */
export function isTaskLine(event: WorkerEvent): boolean {
  return event.type === "received" || event.type === "done";
}

/**
 * One JSON object for a worker event: `time`, `event` and the event's own fields in snake_case,
 * the body as its size.
 */
export function jsonEvent(event: WorkerEvent | { type: string; [key: string]: unknown }): string {
  const { type, ...fields } = event as { type: string; [key: string]: unknown };
  const record: Record<string, unknown> = { time: new Date().toISOString(), event: type };
  for (const [key, value] of Object.entries(fields)) {
    if (key === "body" && value instanceof Uint8Array) record.body_bytes = value.length;
    else record[key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)] = value;
  }
  return JSON.stringify(record);
}

/** Counts tasks between summaries. */
export class Summary {
  #done = 0;
  #failed = 0;
  #since = performance.now();

  /** Counts `event` if it ends a try. */
  record(event: WorkerEvent): void {
    if (event.type === "done") this.#done++;
    else if (
      event.type === "retried" || event.type === "dead_lettered"
    ) this.#failed++;
  }

  /** The line for the period since the last call, or undefined if nothing happened; resets. */
  take(): string | undefined {
    const total = this.#done + this.#failed;
    const seconds = (performance.now() - this.#since) / 1000;
    const line = total === 0
      ? undefined
      : ` [=] ${total} tasks in the last ${Math.round(seconds)} s (${
        (total / seconds).toFixed(1)
      }/s): ${this.#done} done, ${this.#failed} failed`;
    this.#done = 0;
    this.#failed = 0;
    this.#since = performance.now();
    return line;
  }
}
