/**
 * Parked tasks as text: one safe line for a terminal (anything a terminal would act on is
 * escaped), or one JSON object per line.
 *
 * @module
 */

import type { ParkedTask } from "../operate/parked.ts";

/** A parked task as one JSON object, for `--json`: one per line. */
export interface ParkedTaskJson {
  /** The task id, or null. */
  id: string | null;
  /** The body as UTF-8 text (invalid bytes replaced by U+FFFD). */
  body: string;
  /** The exact body, base64; only when the body is not valid UTF-8. */
  body_base64?: string;
  /** Tries made before it was parked. */
  attempts: number;
  /** Why its last try failed, or null. */
  reason: string | null;
  /** When it was parked (ISO 8601), or null. */
  failed_at: string | null;
  /** The host of the worker that parked it, or null. */
  worker: string | null;
  /** The task queue it came from, or null. */
  queue: string | null;
}

/** The `--json` object of a parked task. */
export function parkedTaskJson(task: ParkedTask): ParkedTaskJson {
  const utf8 = decodeUtf8(task.body);
  return {
    id: task.id ?? null,
    body: utf8 ?? new TextDecoder().decode(task.body),
    ...(utf8 === undefined ? { body_base64: Buffer.from(task.body).toString("base64") } : {}),
    attempts: task.attempts,
    reason: task.reason ?? null,
    failed_at: task.failedAt ?? null,
    worker: task.worker ?? null,
    queue: task.queue ?? null,
  };
}

/**
 * The `--json` line of a parked task. Characters a terminal would act on (bidi overrides, C1
 * controls, line separators) are written as `\uXXXX` escapes, which JSON parsers read back as
 * the same characters.
 */
export function formatParkedJson(task: ParkedTask): string {
  return JSON.stringify(parkedTaskJson(task)).replace(
    /[\p{Cc}\p{Cf}\p{Co}\p{Zl}\p{Zp}]/gu,
    (char) =>
      Array.from(
        { length: char.length },
        (_, i) => `\\u${char.charCodeAt(i).toString(16).padStart(4, "0")}`,
      ).join(""),
  );
}

/** How much of a body a listing line shows, in characters. */
export const BODY_PREVIEW_CHARS = 80;

/**
 * A parked task as one line for a terminal: id, attempts, failed-at, reason and the start of the
 * body. Everything that came from the message is escaped, so a task cannot move the cursor,
 * change colours or start a new line.
 */
export function formatParkedLine(task: ParkedTask): string {
  const id = task.id === undefined ? "(no id)" : escapeText(task.id);
  const reason = task.reason === undefined ? "-" : `"${escapeText(task.reason)}"`;
  const failedAt = task.failedAt === undefined ? "-" : escapeText(task.failedAt);
  return `${id}  attempts ${task.attempts}  failed-at ${failedAt}  reason ${reason}  body ${
    previewBody(task.body)
  }`;
}

/**
 * The body quoted and escaped for a terminal, cut after `maxChars` characters of the escaped text
 * with `…` and the body's size: `"Fourth message...."`, `"\u{1b}[31mred"`, `"\xff\xfe"`.
 * Invalid UTF-8 bytes show as `\xHH`; control, format and separator characters as `\u{H}`.
 */
export function previewBody(body: Uint8Array, maxChars = BODY_PREVIEW_CHARS): string {
  let shown = "";
  for (const token of escapeTokens(bodyTokens(body))) {
    // Whole tokens only: an escape is never cut in half.
    if (shown.length + token.length > maxChars) return `"${shown}"… (${body.length} bytes)`;
    shown += token;
  }
  return `"${shown}"`;
}

/**
 * `text` with everything a terminal would act on escaped: `\n`, `\t`, `\"`, `\\`, and control,
 * format and separator characters as `\u{H}` (ESC, bidi overrides, zero-width characters).
 */
export function escapeText(text: string): string {
  return escapeTokens(codePoints(text)).join("");
}

const UNPRINTABLE = /^[\p{Cc}\p{Cf}\p{Co}\p{Cs}\p{Zl}\p{Zp}]$/u;
const SHORT_ESCAPES: Record<string, string> = {
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
  "\\": "\\\\",
  '"': '\\"',
};

/** One display token per code point (or per invalid byte, already escaped as `\xHH`). */
interface Token {
  text: string;
  raw: boolean;
}

function escapeTokens(tokens: readonly Token[]): string[] {
  return tokens.map(({ text, raw }) => {
    if (raw) return text;
    const short = SHORT_ESCAPES[text];
    if (short !== undefined) return short;
    if (UNPRINTABLE.test(text)) return `\\u{${text.codePointAt(0)!.toString(16)}}`;
    return text;
  });
}

function codePoints(text: string): Token[] {
  return Array.from(text, (char) => ({ text: char, raw: false }));
}

function bodyTokens(body: Uint8Array): Token[] {
  const whole = decodeUtf8(body);
  if (whole !== undefined) return codePoints(whole);
  const tokens: Token[] = [];
  for (let i = 0; i < body.length;) {
    const length = sequenceLength(body[i]!);
    const char = length === 0 ? undefined : decodeUtf8(body.subarray(i, i + length));
    if (char !== undefined && Array.from(char).length === 1) {
      tokens.push({ text: char, raw: false });
      i += length;
    } else {
      tokens.push({ text: `\\x${body[i]!.toString(16).padStart(2, "0")}`, raw: true });
      i++;
    }
  }
  return tokens;
}

// The length of the UTF-8 sequence a lead byte starts; 0 for a byte that cannot lead one.
function sequenceLength(lead: number): number {
  if (lead < 0x80) return 1;
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 0;
}

function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return undefined;
  }
}
