/**
 * The programs under test as whole processes: started with `deno run` and the permissions of
 * their shebang lines, as a user starts them, and timed from spawn to exit.
 *
 * @module
 */

import { type Deadline, TimeoutError } from "./_deadline.ts";

/** The project's root, where the entry scripts are. */
export const ROOT = new URL("../", import.meta.url);

/** Lines of stderr kept for error messages. */
const STDERR_TAIL = 20;

/** The permissions `script` (relative to the root) asks for in its `deno run` shebang line. */
export function shebangPermissions(script: string): string[] {
  const first = Deno.readTextFileSync(new URL(script, ROOT)).split("\n", 1)[0] ?? "";
  const match = /^#!\/usr\/bin\/env -S deno run (.*)$/.exec(first);
  if (!match?.[1]) throw new TypeError(`Cannot start "${script}": no "deno run" shebang line`);
  return match[1].trim().split(/\s+/);
}

/** Options for {@linkcode startScript}. */
export interface StartOptions {
  /**
   * The broker, passed as `AMQP_URL` so that no password shows in the process list.
   */
  url: string;
  /**
   * Bytes written to the script's stdin, which is then closed.
   * @default {undefined} (stdin is empty)
   */
  stdin?: Uint8Array;
  /**
   * Called with each line of stdout as it is read, and the `performance.now()` it was read at.
   * Without it, stdout is kept in {@linkcode ScriptProcess.stdout}.
   * @default {undefined}
   */
  onLine?: (line: string, at: number) => void;
}

/** An entry script running as a process of its own. */
export class ScriptProcess implements AsyncDisposable {
  /** The command line, for messages. */
  readonly name: string;
  /** When it was spawned, on the `performance.now()` clock. */
  readonly startedAt: number;
  /** Its stdout lines, when no `onLine` was given. */
  readonly stdout: string[] = [];
  /** The last lines of its stderr. */
  readonly stderr: string[] = [];
  /** When it exited, on the `performance.now()` clock; NaN while it runs. */
  endedAt = NaN;
  #child: Deno.ChildProcess;
  #status: Promise<Deno.CommandStatus>;
  #output: Promise<unknown>;

  constructor(name: string, command: Deno.Command, options: StartOptions) {
    this.name = name;
    this.startedAt = performance.now();
    this.#child = command.spawn();
    this.#status = this.#child.status.then((status) => {
      this.endedAt = performance.now();
      return status;
    });
    const onLine = options.onLine ?? ((line: string) => this.stdout.push(line));
    this.#output = Promise.all([
      readLines(this.#child.stdout, onLine),
      readLines(this.#child.stderr, (line) => {
        this.stderr.push(line);
        if (this.stderr.length > STDERR_TAIL) this.stderr.shift();
      }),
      options.stdin === undefined ? undefined : feed(this.#child.stdin, options.stdin),
    ]);
  }

  /** The process id, for /proc. */
  get pid(): number {
    return this.#child.pid;
  }

  /** Resolves when the process exits, however long that takes. */
  get exited(): Promise<Deno.CommandStatus> {
    return this.#status;
  }

  /** Wall-clock milliseconds from spawn to exit. */
  get wallMs(): number {
    return this.endedAt - this.startedAt;
  }

  /** Sends `signal`; a process that has exited is left alone. */
  kill(signal: Deno.Signal): void {
    if (!Number.isNaN(this.endedAt)) return;
    try {
      this.#child.kill(signal);
    } catch {
      // It exited in the meantime.
    }
  }

  /**
   * Waits for the process to exit and its output to be read.
   *
   * @throws {TimeoutError} when `deadline` passes first; the process is then killed.
   */
  async exit(deadline: Deadline): Promise<Deno.CommandStatus> {
    try {
      const status = await deadline.race(this.#status, `${this.name} to exit`);
      await deadline.race(this.#output, `the output of ${this.name}`);
      return status;
    } catch (error) {
      this.kill("SIGKILL");
      if (error instanceof TimeoutError) throw new TimeoutError(this.explain(error.message));
      throw error;
    }
  }

  /** Waits for a successful exit. */
  async success(deadline: Deadline): Promise<void> {
    const { code } = await this.exit(deadline);
    if (code !== 0) throw new Error(this.explain(`${this.name} exited with code ${code}`));
  }

  /** `message` with the last line the process wrote on stderr. */
  explain(message: string): string {
    const last = this.stderr.findLast((line) => line.trim() !== "");
    return last === undefined ? message : `${message}: ${last.trim()}`;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.kill("SIGKILL");
    await this.#status;
    await this.#output;
  }
}

/** Starts `script` (relative to the root) with the permissions of its shebang line. */
export function startScript(
  script: string,
  args: readonly string[],
  options: StartOptions,
): ScriptProcess {
  const command = new Deno.Command("deno", {
    args: ["run", ...shebangPermissions(script), script, ...args],
    cwd: ROOT,
    env: { AMQP_URL: options.url, NO_COLOR: "1" },
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  });
  return new ScriptProcess([script, ...args].join(" "), command, options);
}

/** Runs `script` to a successful exit; resolves with the finished process. */
export async function runScript(
  script: string,
  args: readonly string[],
  options: StartOptions & { deadline: Deadline },
): Promise<ScriptProcess> {
  await using process = startScript(script, args, options);
  await process.success(options.deadline);
  return process;
}

async function feed(stdin: WritableStream<Uint8Array>, bytes: Uint8Array): Promise<void> {
  const writer = stdin.getWriter();
  try {
    await writer.write(bytes);
    await writer.close();
  } catch {
    // The process exited before reading all of it; its exit code says why.
  }
}

async function readLines(
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
