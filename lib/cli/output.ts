/**
 * Buffered line output: lines written in one turn of the event loop go out in one write per
 * stream at its end (or sooner, when flushed), rather than a system call per line.
 *
 * @module
 */

import { setImmediate } from "node:timers";

const encoder = new TextEncoder();

/** A stream lines are written to: `Deno.stdout`, `Deno.stderr`. */
export interface LineSink {
  /** Writes some of `bytes`, returning how many; throws when the stream is closed. */
  writeSync(bytes: Uint8Array): number;
}

/** Options for {@linkcode LineWriter}. */
export interface LineWriterOptions {
  /**
   * Called once for each stream that cannot be written any more (its reader went away, as
   * `| head -1` does: a broken pipe). Lines for that stream are dropped from then on; a program
   * usually stops here, as it would on SIGTERM.
   * @default {() => {}}
   */
  onClosed?: (stream: "stdout" | "stderr", error: unknown) => void;
  /**
   * Where stdout lines go.
   * @default {Deno.stdout}
   */
  stdout?: LineSink;
  /**
   * Where stderr lines go.
   * @default {Deno.stderr}
   */
  stderr?: LineSink;
}

/** Writes lines to stdout and stderr in batches; a write error never escapes it. */
export class LineWriter {
  #out: string[] = [];
  #err: string[] = [];
  #scheduled = false;
  #closed = new Set<"stdout" | "stderr">();
  #onClosed: (stream: "stdout" | "stderr", error: unknown) => void;
  #sinks: Record<"stdout" | "stderr", LineSink>;

  constructor(options: LineWriterOptions = {}) {
    const { onClosed = () => {}, stdout = Deno.stdout, stderr = Deno.stderr } = options;
    this.#onClosed = onClosed;
    this.#sinks = { stdout, stderr };
  }

  /** Queues a line for stdout. */
  out(line: string): void {
    if (this.#closed.has("stdout")) return;
    this.#out.push(line);
    this.#schedule();
  }

  /** Queues a line for stderr. */
  err(line: string): void {
    if (this.#closed.has("stderr")) return;
    this.#err.push(line);
    this.#schedule();
  }

  /** Whether `stream` was found closed. */
  closed(stream: "stdout" | "stderr"): boolean {
    return this.#closed.has(stream);
  }

  /** Writes everything queued, now. */
  flush(): void {
    this.#scheduled = false;
    if (this.#out.length > 0) this.#write("stdout", this.#out.splice(0));
    if (this.#err.length > 0) this.#write("stderr", this.#err.splice(0));
  }

  #write(stream: "stdout" | "stderr", lines: string[]): void {
    if (this.#closed.has(stream)) return;
    let bytes = encoder.encode(lines.join("\n") + "\n");
    try {
      while (bytes.length > 0) bytes = bytes.subarray(this.#sinks[stream].writeSync(bytes));
    } catch (error) {
      // Thrown out of a timer this would kill the process, and with it the acks of finished
      // tasks: the closed stream is dropped instead, and the owner decides what that means.
      this.#closed.add(stream);
      this.#onClosed(stream, error);
    }
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => this.flush());
  }
}
