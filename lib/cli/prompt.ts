/**
 * A yes/no question on the terminal.
 *
 * @module
 */

/**
 * Asks `question` on stderr and reads the answer from stdin: true for y or yes. Read without
 * blocking the event loop, so heartbeats keep the connection alive while the user thinks.
 */
export async function confirm(question: string): Promise<boolean> {
  await Deno.stderr.write(new TextEncoder().encode(question));
  const answer = await readLine();
  return /^\s*y(es)?\s*$/i.test(answer ?? "");
}

async function readLine(): Promise<string | undefined> {
  const buffer = new Uint8Array(256);
  const bytes: number[] = [];
  while (!bytes.includes(0x0a)) {
    const read = await Deno.stdin.read(buffer);
    if (read === null) break;
    bytes.push(...buffer.subarray(0, read));
  }
  if (bytes.length === 0) return undefined;
  return new TextDecoder().decode(new Uint8Array(bytes)).split("\n", 1)[0];
}
