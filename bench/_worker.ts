/**
 * Our worker under test: `worker.ts` as a whole process with its shebang's permissions, its
 * stdout read through a pipe, stopped with SIGINT as a user stops it.
 *
 * @module
 */

import type { Deadline } from "./_deadline.ts";
import { exit, type ScriptProcess, startScript } from "./_process.ts";

/** Options for {@linkcode WorkerUnderTest.start}. */
export interface StartWorkerOptions {
  /** The broker. */
  url: string;
  /** Bounds every wait on the worker. */
  deadline: Deadline;
  /** Called with each line of its stdout and the `performance.now()` it was read at. */
  onLine: (line: string, at: number) => void;
}

/** A running `worker.ts`. */
export class WorkerUnderTest implements AsyncDisposable {
  /** The process. */
  readonly process: ScriptProcess;
  /** When its `[*] Waiting for messages` line was read: it had started consuming. */
  readonly consumingAt: number;
  #deadline: Deadline;

  private constructor(process: ScriptProcess, consumingAt: number, deadline: Deadline) {
    this.process = process;
    this.consumingAt = consumingAt;
    this.#deadline = deadline;
  }

  /** Starts `worker.ts` on `queue` with `args` and waits until it consumes. */
  static async start(
    queue: string,
    args: readonly string[],
    options: StartWorkerOptions,
  ): Promise<WorkerUnderTest> {
    const { url, deadline, onLine } = options;
    const ready = Promise.withResolvers<number>();
    const process = await startScript("worker.ts", ["--queue", queue, ...args], {
      url,
      onLine(line, at) {
        if (line.startsWith(" [*] Waiting for messages")) ready.resolve(at);
        onLine(line, at);
      },
    });
    try {
      const consumingAt = await deadline.race(
        Promise.race([ready.promise, exitedEarly(process)]),
        "worker.ts to start consuming",
      );
      return new WorkerUnderTest(process, consumingAt, deadline);
    } catch (error) {
      await process[Symbol.asyncDispose]();
      throw error;
    }
  }

  /**
   * Resolves as `promise` does.
   *
   * @throws {Error} when the worker exits first, or the deadline passes first.
   */
  until<T>(promise: Promise<T>, what: string): Promise<T> {
    return this.#deadline.race(Promise.race([promise, exitedEarly(this.process)]), what);
  }

  /**
   * Its resident memory now (VmRSS), in MB of 2^20 bytes. Asked of `ps`, which reads it from
   * `/proc/<pid>`: Deno lets only `--allow-all` read another process's `/proc` entries.
   */
  async rssMegabytes(): Promise<number> {
    const pid = String(this.process.pid);
    const { success, stdout } = await new Deno.Command("ps", {
      args: ["-o", "rss=", "-p", pid],
      stderr: "null",
    }).output();
    const kib = Number(new TextDecoder().decode(stdout).trim());
    if (!success || !(kib > 0)) throw new Error(`Cannot read the memory of process ${pid} with ps`);
    return kib / 1024;
  }

  /** Stops it with SIGINT and checks that it exits 0. */
  async stop(): Promise<void> {
    this.process.kill("SIGINT");
    const { code } = await exit(this.process, this.#deadline);
    if (code !== 0) {
      throw new Error(this.process.explain(`worker.ts exited with code ${code} on SIGINT`));
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.process[Symbol.asyncDispose]();
  }
}

async function exitedEarly(process: ScriptProcess): Promise<never> {
  const { code } = await process.finished;
  throw new Error(process.explain(`worker.ts exited early with code ${code}`));
}
