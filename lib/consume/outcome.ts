/**
 * The outcome of a task, for a producer that waits for it: sent by the worker once the task is
 * final (done, or parked after its last try) to the producer's direct reply-to address. Nothing
 * is declared for it; a producer that is gone loses the outcome only, never the task.
 *
 * @module
 */

import { type ConfirmChannel, type Message, publishReply } from "../amqp.ts";

/**
 * What became of a task, as {@linkcode Producer.sendAndWait} reports it.
 *
 * @example Print an outcome
 * ```ts
 * import type { Outcome } from "@workqueue/rabbitmq";
 *
 * function describe(outcome: Outcome): string {
 *   return outcome.status === "done"
 *     ? `done by ${outcome.worker} in ${outcome.durationMs} ms: ${JSON.stringify(outcome.result)}`
 *     : `parked after ${outcome.attempts} tries: ${outcome.reason}`;
 * }
 * console.log(describe({ id: "1", status: "done", attempts: 1, durationMs: 3, worker: "w1" }));
 * ```
 */
export interface Outcome {
  /** The task id. */
  id: string;
  /** `done`: its handler succeeded; `parked`: it failed its last try (or for good) and is in the dead queue. */
  status: "done" | "parked";
  /** Tries made, the last included. */
  attempts: number;
  /** How long the last try took, in milliseconds. */
  durationMs: number;
  /** The host of the worker that finished it. */
  worker: string;
  /** What the handler returned (a `--handler`'s value, an `--exec` command's standard output). */
  result?: unknown;
  /** Why it was parked. */
  reason?: string;
}

/** The most bytes of an outcome's result; a larger result is left out (`result_truncated`). */
export const MAX_RESULT_BYTES = 1_048_576;

/** The AMQP `type` of outcome messages. */
export const OUTCOME_TYPE = "task-outcome";

const encoder = new TextEncoder();

/** Whether a producer waits for the outcome of `message`. */
export function isAwaited(message: Pick<Message, "properties">): boolean {
  return typeof message.properties.replyTo === "string" && message.properties.replyTo !== "";
}

/**
 * Sends `outcome` to the producer of `message`, if it waits for one. Never throws: a producer
 * that is gone (or an outcome that cannot be sent) costs the outcome, not the task.
 */
export function sendOutcome(
  channel: ConfirmChannel | undefined,
  message: Pick<Message, "properties">,
  outcome: Outcome,
): void {
  if (!channel || !isAwaited(message)) return;
  try {
    publishReply(channel, message.properties.replyTo!, encodeOutcome(outcome), {
      correlationId: message.properties.correlationId ?? outcome.id,
      contentType: "application/json",
      type: OUTCOME_TYPE,
    });
  } catch {
    // The producer loses its answer; the task is safe either way.
  }
}

/** The outcome as JSON bytes; a result that is not JSON or too large is left out, with a note. */
export function encodeOutcome(outcome: Outcome): Uint8Array {
  const { result, ...rest } = outcome;
  if (result === undefined) return encoder.encode(JSON.stringify(rest));
  let bytes: Uint8Array;
  try {
    bytes = encoder.encode(JSON.stringify({ ...rest, result }));
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    return encoder.encode(JSON.stringify({ ...rest, result_error: `not JSON: ${why}` }));
  }
  if (bytes.length <= MAX_RESULT_BYTES) return bytes;
  return encoder.encode(JSON.stringify({ ...rest, result_truncated: true }));
}

/**
 * Reads an outcome message.
 *
 * @throws {TypeError} when it is not one.
 */
export function decodeOutcome(content: Uint8Array): Outcome {
  const value = JSON.parse(new TextDecoder().decode(content));
  if (
    typeof value !== "object" || value === null || typeof value.id !== "string" ||
    (value.status !== "done" && value.status !== "parked")
  ) {
    throw new TypeError("Invalid outcome: not an outcome object");
  }
  return value as Outcome;
}
