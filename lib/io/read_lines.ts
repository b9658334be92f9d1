/**
 * A byte stream, such as a child process's stdout, read as lines of UTF-8 text.
 *
 * @module
 */

/**
 * Calls `onLine` with each line of `stream` as it arrives, without its `\n`, and the
 * `performance.now()` at which the chunk holding its end was read; a last line without a `\n`
 * counts too. Resolves when the stream ends.
 *
 * @example Print a command's output as it comes
 * ```ts ignore
 * import { readLines } from "./lib/io/read_lines.ts";
 *
 * const child = new Deno.Command("ls", { stdout: "piped" }).spawn();
 * await readLines(child.stdout, (line) => console.log(`> ${line}`));
 * ```
 */
export async function readLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string, at: number) => void,
): Promise<void> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    const at = performance.now();
    const lines = (rest + chunk).split("\n");
    rest = lines.pop() ?? "";
    for (const line of lines) onLine(line, at);
  }
  if (rest !== "") onLine(rest, performance.now());
}
