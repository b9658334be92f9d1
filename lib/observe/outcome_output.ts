/**
 * What a waiting producer prints about an outcome: one line for people, or one JSON object.
 *
 * @module
 */

import type { Outcome } from "../consume/outcome.ts";
import { terminalSafe } from "./worker_output.ts";

/** The most characters of a result a human outcome line shows. */
const RESULT_CHARS = 500;

/** One line for `outcome`; `label` names the task (its line number with --stdin). */
export function describeOutcome(outcome: Outcome, label = ""): string {
  const who = `${label}${outcome.worker ? ` by ${terminalSafe(outcome.worker)}` : ""}`;
  const tries = `${outcome.attempts} attempt${outcome.attempts === 1 ? "" : "s"}`;
  if (outcome.status === "parked") {
    return ` [!] Parked${who} after ${tries}: ${terminalSafe(outcome.reason ?? "no reason given")}`;
  }
  const done = ` [x] Done${who} in ${outcome.durationMs} ms (${tries})`;
  if (outcome.result === undefined || outcome.result === "") return done;
  const text = typeof outcome.result === "string"
    ? outcome.result
    : JSON.stringify(outcome.result) ?? String(outcome.result);
  const shown = text.length > RESULT_CHARS ? `${text.slice(0, RESULT_CHARS)}...` : text;
  return `${done}: ${terminalSafe(shown)}`;
}

/** `outcome` as one JSON object, its fields in snake_case. */
export function jsonOutcome(outcome: Outcome, extra: Record<string, unknown> = {}): string {
  const record: Record<string, unknown> = { ...extra };
  for (const [key, value] of Object.entries(outcome)) {
    record[key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)] = value;
  }
  return JSON.stringify(record);
}
