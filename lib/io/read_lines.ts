/**
 * A byte stream, such as standard input or a child process's stdout, split into lines: each
 * byte is looked at once and copied at most twice, so a line of 50 MB costs what reading 50 MB
 * costs, and no line may grow without bound.
 *
 * @module
 */

/** The longest line {@linkcode splitLines} takes by default: 64 MiB. */
export const MAX_LINE_BYTES = 64 * 1024 * 1024;

/** The longest piece {@linkcode readLines} passes on: 64 KiB. */
export const MAX_OUTPUT_LINE_BYTES = 64 * 1024;

/** Options for {@linkcode splitLines}. */
export interface SplitLinesOptions {
  /**
   * The longest line, in bytes, without its `\n`.
   * @default {MAX_LINE_BYTES}
   */
  maxLength?: number;
  /**
   * What a longer line becomes: `"error"` stops with a `RangeError` as soon as it is seen (what
   * came before it was yielded); `"split"` yields it in pieces of at most `maxLength` bytes, cut
   * where no UTF-8 character is cut when the bytes are UTF-8.
   * @default {"error"}
   */
  tooLong?: "error" | "split";
  /**
   * What the stream is, for the error: `Line 3 of standard input is longer than ...`.
   * @default {"the stream"}
   */
  name?: string;
  /**
   * Stops reading: the stream is cancelled, and the lines end with what was read before.
   * @default {undefined}
   */
  signal?: AbortSignal;
}

const NEWLINE = 0x0a;

/**
 * Yields each line of `stream` as it arrives: its bytes exactly as they came, without the `\n`
 * (a `\r` before it is kept). A last line without a `\n` counts too; an empty stream has none.
 *
 * @throws {RangeError} with `tooLong: "error"`, at a line longer than `maxLength`.
 */
export async function* splitLines(
  stream: ReadableStream<Uint8Array>,
  options: SplitLinesOptions = {},
): AsyncGenerator<Uint8Array> {
  const { maxLength = MAX_LINE_BYTES, tooLong = "error", name = "the stream", signal } = options;
  if (!Number.isSafeInteger(maxLength) || maxLength < 4) {
    throw new RangeError(`Invalid maxLength "${maxLength}": expected a whole number of at least 4`);
  }
  // The line so far: pieces of chunks, joined once when its end comes.
  let parts: Uint8Array[] = [];
  let length = 0;
  let line = 1;
  for await (const chunk of chunks(stream, signal)) {
    let start = 0;
    while (start < chunk.length) {
      const newline = chunk.indexOf(NEWLINE, start);
      const end = newline === -1 ? chunk.length : newline;
      if (end > start) {
        parts.push(chunk.subarray(start, end));
        length += end - start;
      }
      if (length > maxLength) {
        if (tooLong === "error") {
          throw new RangeError(
            `Line ${line} of ${name} is longer than ${maxLength} bytes${
              maxLength >= 1024 ? ` (${sizeOf(maxLength)})` : ""
            }`,
          );
        }
        const joined = join(parts, length);
        let from = 0;
        while (joined.length - from > maxLength) {
          const cut = from + pieceLength(joined, from, maxLength);
          yield joined.subarray(from, cut);
          from = cut;
        }
        parts = [joined.subarray(from)];
        length = joined.length - from;
      }
      if (newline === -1) break;
      yield join(parts, length);
      parts = [];
      length = 0;
      line++;
      start = newline + 1;
    }
  }
  if (length > 0) yield join(parts, length);
}

// The stream's chunks until it ends or `signal` aborts; a reader that stops early cancels it.
async function* chunks(
  stream: ReadableStream<Uint8Array>,
  signal: AbortSignal | undefined,
): AsyncGenerator<Uint8Array> {
  if (signal === undefined) return yield* stream;
  const reader = stream.getReader();
  const cancel = () => void reader.cancel().catch(() => {});
  if (signal.aborted) cancel();
  else signal.addEventListener("abort", cancel, { once: true });
  let done = false;
  try {
    while (true) {
      const next = await reader.read();
      if (next.done) break;
      yield next.value;
    }
    done = true;
  } finally {
    signal.removeEventListener("abort", cancel);
    if (!done) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}

function join(parts: Uint8Array[], length: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const joined = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    joined.set(part, offset);
    offset += part.length;
  }
  return joined;
}

// At most `max` bytes from `from`, backed off to the start of a UTF-8 character (a byte that is
// not 0b10xxxxxx) when the cut would fall inside one; other bytes are cut at `max`.
function pieceLength(bytes: Uint8Array, from: number, max: number): number {
  for (let back = 0; back < 4; back++) {
    if ((bytes[from + max - back]! & 0xc0) !== 0x80) return max - back;
  }
  return max;
}

function sizeOf(bytes: number): string {
  return bytes >= 1024 * 1024
    ? `${+(bytes / 1024 / 1024).toFixed(1)} MiB`
    : `${+(bytes / 1024).toFixed(1)} KiB`;
}

/** Options for {@linkcode readLines}. */
export interface ReadLinesOptions {
  /**
   * The longest line passed on, in bytes: a longer one is passed on in pieces of at most this,
   * each as a line of its own, so that a command printing without newlines cannot grow memory.
   * @default {MAX_OUTPUT_LINE_BYTES}
   */
  maxLength?: number;
  /**
   * Stops reading: the stream is cancelled, and the promise resolves with the lines so far told.
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/**
 * Calls `onLine` with each line of `stream` as it arrives, decoded as UTF-8 (a byte that is not
 * becomes U+FFFD), without its `\n`; a last line without one counts too. A line longer than
 * `maxLength` bytes comes in pieces. `at` is the `performance.now()` when the line was read.
 * Resolves when the stream ends.
 */
export async function readLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string, at: number) => void,
  options: ReadLinesOptions = {},
): Promise<void> {
  const { maxLength = MAX_OUTPUT_LINE_BYTES, signal } = options;
  const decoder = new TextDecoder();
  const split = splitLines(stream, { maxLength, tooLong: "split", ...(signal ? { signal } : {}) });
  for await (const line of split) {
    // When the line was read: the bench times a worker's lines by it.
    onLine(decoder.decode(line), performance.now());
  }
}
