import assert from "node:assert/strict";
import { readLines } from "../lib/io/read_lines.ts";

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

Deno.test("readLines() passes each line the time its chunk was read", async () => {
  const encode = (text: string) => new TextEncoder().encode(text);
  const lines: Array<[string, number]> = [];
  const before = performance.now();
  await readLines(streamOf(encode("a\nb\n"), encode("c")), (line, at) => lines.push([line, at]));
  assert.deepEqual(lines.map(([line]) => line), ["a", "b", "c"]);
  const [a, b, c] = lines.map(([, at]) => at);
  assert.ok(before <= a! && a === b && b! <= c! && c! <= performance.now());
});
