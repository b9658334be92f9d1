/**
 * A byte stream, such as a child process's stdout, read as lines of UTF-8 text.
 *
 * @module
 */

/**
 * Calls `onLine` with each line of `stream` as it arrives, without its `\n`; a last line without
 * one counts too. Resolves when the stream ends.
 */
export async function readLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    const lines = (rest + chunk).split("\n");
    rest = lines.pop() ?? "";
    for (const line of lines) onLine(line);
  }
  if (rest !== "") onLine(rest);
}
