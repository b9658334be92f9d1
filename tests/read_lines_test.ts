import assert from "node:assert/strict";
import { MAX_OUTPUT_LINE_BYTES, readLines, splitLines } from "../lib/io/read_lines.ts";
import { nonEmptyLines } from "../lib/produce/bulk_send.ts";

function streamOf(...chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  return ReadableStream.from(chunks);
}

Deno.test("readLines() joins lines split across chunks and keeps a last line without a newline", async () => {
  const encode = (text: string) => new TextEncoder().encode(text);
  const lines: string[] = [];
  await readLines(streamOf(encode("one\ntw"), encode("o\n\nthr"), encode("ee")), (line) => {
    lines.push(line);
  });
  assert.deepEqual(lines, ["one", "two", "", "three"]);
});

Deno.test("readLines() decodes a UTF-8 character split across chunks", async () => {
  const bytes = new TextEncoder().encode("café\n");
  const lines: string[] = [];
  await readLines(streamOf(bytes.slice(0, 4), bytes.slice(4)), (line) => lines.push(line));
  assert.deepEqual(lines, ["café"]);
});

/** `size` bytes of `a` in 64 KiB chunks (what a pipe gives), then a newline. */
function longLine(size: number): ReadableStream<Uint8Array> {
  const chunk = new Uint8Array(65536).fill(0x61);
  let left = size;
  return new ReadableStream({
    pull(controller) {
      if (left <= 0) {
        controller.enqueue(new Uint8Array([0x0a]));
        controller.close();
        return;
      }
      const size = Math.min(left, chunk.length);
      left -= size;
      controller.enqueue(chunk.slice(0, size));
    },
  });
}

async function timeSplit(size: number): Promise<number> {
  const started = performance.now();
  let total = 0;
  for await (const line of splitLines(longLine(size))) total += line.length;
  assert.equal(total, size);
  return performance.now() - started;
}

Deno.test("splitLines() and readLines() take time linear in a line's length, not quadratic", async () => {
  await timeSplit(1_000_000); // warm up
  const small = await timeSplit(4_000_000);
  const large = await timeSplit(32_000_000);
  // Linear is 8 times as long for 8 times the bytes; quadratic would be 64 times. The old reader
  // took 11 s for 32 MB.
  assert.ok(large < 3000, `32 MB line in ${large.toFixed(0)} ms`);
  assert.ok(large / Math.max(small, 30) < 24, `4 MB: ${small} ms, 32 MB: ${large} ms`);
  const started = performance.now();
  let pieces = 0;
  await readLines(longLine(50_000_000), (line) => {
    assert.ok(line.length <= MAX_OUTPUT_LINE_BYTES);
    pieces++;
  });
  const elapsed = performance.now() - started;
  assert.ok(elapsed < 3000, `50 MB of output without a newline in ${elapsed.toFixed(0)} ms`);
  assert.equal(pieces, Math.ceil(50_000_000 / MAX_OUTPUT_LINE_BYTES));
});

Deno.test("splitLines() yields each line's bytes exactly, split across chunks, a \\r kept", async () => {
  const lines: number[][] = [];
  for await (
    const line of splitLines(
      streamOf(new Uint8Array([0xff, 0x00, 0x0d, 0x0a, 0xc3]), new Uint8Array([0x0a, 0x0a, 0x41])),
    )
  ) lines.push([...line]);
  assert.deepEqual(lines, [[0xff, 0x00, 0x0d], [0xc3], [], [0x41]]);
});

Deno.test("splitLines() stops at a line longer than maxLength, after the lines before it", async () => {
  const encode = (text: string) => new TextEncoder().encode(text);
  const seen: string[] = [];
  await assert.rejects(
    async () => {
      for await (
        const line of splitLines(streamOf(encode("ok\nfine\n0123"), encode("456789\nnever\n")), {
          maxLength: 8,
          name: "standard input",
        })
      ) seen.push(new TextDecoder().decode(line));
    },
    RangeError,
    "Line 3 of standard input is longer than 8 bytes",
  );
  assert.deepEqual(seen, ["ok", "fine"]);
});

Deno.test("readLines() passes a long line on in pieces of at most maxLength bytes, no character cut", async () => {
  const text = "é€".repeat(50) + "\nshort";
  const lines: string[] = [];
  await readLines(streamOf(new TextEncoder().encode(text)), (line) => lines.push(line), {
    maxLength: 16,
  });
  assert.equal(lines.at(-1), "short");
  const pieces = lines.slice(0, -1);
  assert.equal(pieces.join(""), "é€".repeat(50));
  for (const piece of pieces) {
    assert.ok(new TextEncoder().encode(piece).length <= 16);
    assert.ok(!piece.includes("\ufffd"), "no character cut in two");
  }
});

Deno.test("nonEmptyLines() drops empty lines and a \\r before the newline, nothing else", async () => {
  const lines: number[][] = [];
  for await (
    const line of nonEmptyLines(
      streamOf(new Uint8Array([0x0d, 0x0a, 0x0a, 0x20, 0x0d, 0x0d, 0x0a])),
    )
  ) {
    lines.push([...line]);
  }
  assert.deepEqual(lines, [[0x20, 0x0d]]);
});

Deno.test("readLines() passes each line the time it was read", async () => {
  const encode = (text: string) => new TextEncoder().encode(text);
  const lines: Array<[string, number]> = [];
  const before = performance.now();
  await readLines(streamOf(encode("a\nb\n"), encode("c")), (line, at) => lines.push([line, at]));
  assert.deepEqual(lines.map(([line]) => line), ["a", "b", "c"]);
  const [a, b, c] = lines.map(([, at]) => at);
  assert.ok(before <= a! && a! <= b! && b! <= c! && c! <= performance.now());
});

Deno.test("readLines() stops at its signal: the stream is cancelled, and it resolves with the lines read", async () => {
  let cancelled: unknown;
  let pull = 0;
  // A stream that never ends by itself, as the pipe of a command whose leftover holds it open.
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (pull++ === 0) controller.enqueue(new TextEncoder().encode("first\n"));
      return new Promise(() => {});
    },
    cancel(reason) {
      cancelled = reason ?? "cancelled";
    },
  });
  const controller = new AbortController();
  const lines: string[] = [];
  const reading = readLines(stream, (line) => {
    lines.push(line);
    controller.abort();
  }, { signal: controller.signal });
  await reading;
  assert.deepEqual(lines, ["first"]);
  assert.ok(cancelled !== undefined, "the stream was cancelled");
});

Deno.test("splitLines() with a signal already aborted yields nothing and cancels the stream", async () => {
  let cancelled = false;
  const stream = new ReadableStream<Uint8Array>({
    pull: (controller) => controller.enqueue(new TextEncoder().encode("x\n")),
    cancel: () => void (cancelled = true),
  });
  const lines = [];
  for await (const line of splitLines(stream, { signal: AbortSignal.abort() })) lines.push(line);
  assert.deepEqual(lines, []);
  assert.ok(cancelled);
});
