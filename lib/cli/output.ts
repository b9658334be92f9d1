/**
 * Buffered line output: lines written in one turn of the event loop go out in one write per
 * stream at its end (or sooner, when flushed), rather than a system call per line.
 *
 * @module
 */

import { setImmediate } from "node:timers";

const encoder = new TextEncoder();

/** Writes lines to stdout and stderr in batches. */
export class LineWriter {
  #out: string[] = [];
  #err: string[] = [];
  #scheduled = false;

  /** Queues a line for stdout. */
  out(line: string): void {
    this.#out.push(line);
    this.#schedule();
  }

  /** Queues a line for stderr. */
  err(line: string): void {
    this.#err.push(line);
    this.#schedule();
  }

  /** Writes everything queued, now. */
  flush(): void {
    this.#scheduled = false;
    if (this.#out.length > 0) write(Deno.stdout, this.#out.splice(0));
    if (this.#err.length > 0) write(Deno.stderr, this.#err.splice(0));
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => this.flush());
  }
}

function write(stream: { writeSync(p: Uint8Array): number }, lines: string[]): void {
  let bytes = encoder.encode(lines.join("\n") + "\n");
  while (bytes.length > 0) bytes = bytes.subarray(stream.writeSync(bytes));
}
