/**
 * An entry script of this repository run as a child Deno process, with exactly the permissions
 * its shebang line asks for, and its output read line by line as it comes. The demo, the bench
 * and the tests run the scripts this way.
 *
 * @module
 */

import { readLines } from "./read_lines.ts";

/** The repository root: where the entry scripts are. */
const ROOT = new URL("../../", import.meta.url);

/** Lines of stderr a {@linkcode ScriptProcess} keeps for error messages. */
const STDERR_KEPT = 20;

/** Options for {@linkcode scriptPermissions}. */
export interface ScriptPermissionsOptions {
  /**
   * The folder `script` is relative to.
   * @default {the repository root}
   */
  root?: URL;
}

/**
 * The permissions an entry script asks for in its `#!/usr/bin/env -S deno run ...` line: the
 * ones it is run with. `"worker.ts"` -> `["--allow-net", "--allow-env=AMQP_URL,...", ...]`.
 *
 * @throws {TypeError} when the script has no such line.
 */
export async function scriptPermissions(
  script: string,
  options: ScriptPermissionsOptions = {},
): Promise<string[]> {
  const { root = ROOT } = options;
  const text = await Deno.readTextFile(new URL(script, root));
  const match = /^#!\/usr\/bin\/env -S deno run (.*)$/.exec(text.split("\n", 1)[0] ?? "");
  if (!match?.[1]) throw new TypeError(`Cannot run ${script}: it has no "deno run" shebang line`);
  return match[1].trim().split(/\s+/);
}

/** Options for {@linkcode spawnScript}. */
export interface SpawnScriptOptions {
  /** The permissions to run it with: {@linkcode scriptPermissions} of the script. */
  permissions: readonly string[];
  /**
   * Variables added to the environment it inherits.
   * @default {{}}
   */
  env?: Record<string, string>;
  /**
   * Written to its stdin, which is then closed.
   * @default {undefined} (stdin is closed from the start)
   */
  stdin?: Uint8Array | string;
  /**
   * Run it in a process group of its own, so that a Ctrl+C in the terminal reaches only this
   * process, which then decides how to stop it.
   * @default {false}
   */
  detached?: boolean;
  /**
   * The folder `script` is relative to, and where it runs.
   * @default {the repository root}
   */
  root?: URL;
  /**
   * The Deno program that runs it. A caller whose `--allow-run` names `deno` passes `"deno"`,
   * as the permission does not cover the same program under the path it is installed at.
   * @default {Deno.execPath()}
   */
  deno?: string;
  /**
   * Called with each line it prints on stdout, without the `\n`, and the `performance.now()` it
   * was read at.
   * @default {() => {}}
   */
  onStdout?: (line: string, at: number) => void;
  /**
   * Called with each line it prints on stderr, without the `\n`, and the `performance.now()` it
   * was read at.
   * @default {() => {}}
   */
  onStderr?: (line: string, at: number) => void;
  /**
   * Called once it has exited and all its output has been read.
   * @default {() => {}}
   */
  onExit?: (status: Deno.CommandStatus) => void;
}

/**
 * Starts `script` with Deno: `deno run <permissions> <script> <args>`, stdout and stderr read
 * line by line.
 *
 * @example Run new_task.ts and wait for it
 * ```ts ignore
 * import { scriptPermissions, spawnScript } from "./lib/io/script_process.ts";
 *
 * await using producer = spawnScript("new_task.ts", ["hello"], {
 *   permissions: await scriptPermissions("new_task.ts"),
 *   onStdout: (line) => console.log(line),
 * });
 * const { code } = await producer.finished;
 * ```
 */
export function spawnScript(
  script: string,
  args: readonly string[],
  options: SpawnScriptOptions,
): ScriptProcess {
  const {
    permissions,
    env = {},
    stdin,
    detached = false,
    root = ROOT,
    deno = Deno.execPath(),
    onStdout = () => {},
    onStderr = () => {},
    onExit = () => {},
  } = options;
  const startedAt = performance.now();
  const child = new Deno.Command(deno, {
    args: ["run", ...permissions, script, ...args],
    cwd: root,
    env,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    detached,
  }).spawn();
  return new ScriptProcess([script, ...args].join(" "), child, {
    stdin: typeof stdin === "string" ? new TextEncoder().encode(stdin) : stdin,
    startedAt,
    onStdout,
    onStderr,
    onExit,
  });
}

/** Options for the {@linkcode ScriptProcess} constructor. */
export interface ScriptProcessOptions
  extends Pick<SpawnScriptOptions, "onStdout" | "onStderr" | "onExit"> {
  /**
   * Written to the child's stdin, which is then closed; the child's stdin must be piped.
   * @default {undefined} (nothing is written)
   */
  stdin?: Uint8Array | undefined;
  /**
   * When the child was started, on the `performance.now()` clock.
   * @default {performance.now()}
   */
  startedAt?: number;
}

/** A script running as its own process; see {@linkcode spawnScript}. */
export class ScriptProcess implements AsyncDisposable {
  /** Its command line without `deno run` and the permissions, for messages. */
  readonly name: string;
  /** When it was started, on the `performance.now()` clock. */
  readonly startedAt: number;
  /** When it exited, on the `performance.now()` clock, maybe before all its output was read. */
  exitedAt = NaN;
  /** The last lines it printed on stderr (20 at most), for error messages. */
  readonly recentStderr: string[] = [];
  /** The exit status, once the process has exited and its output has been read. */
  status: Deno.CommandStatus | undefined;
  /** Resolves with {@linkcode status}. */
  readonly finished: Promise<Deno.CommandStatus>;
  #child: Deno.ChildProcess;

  /** Follows `child`, named `name`, whose stdout and stderr must be piped. */
  constructor(name: string, child: Deno.ChildProcess, options: ScriptProcessOptions = {}) {
    const {
      stdin,
      startedAt = performance.now(),
      onStdout = () => {},
      onStderr = () => {},
      onExit = () => {},
    } = options;
    this.name = name;
    this.startedAt = startedAt;
    this.#child = child;
    const exited = child.status.then((status) => {
      this.exitedAt = performance.now();
      return status;
    });
    this.finished = Promise.all([
      readLines(child.stdout, onStdout),
      readLines(child.stderr, (line, at) => {
        this.recentStderr.push(line);
        if (this.recentStderr.length > STDERR_KEPT) this.recentStderr.shift();
        onStderr(line, at);
      }),
      stdin === undefined ? undefined : feed(child.stdin, stdin),
      exited,
    ]).then(([, , , status]) => {
      this.status = status;
      onExit(status);
      return status;
    });
  }

  /** Its process id. */
  get pid(): number {
    return this.#child.pid;
  }

  /** Sends `signal` unless the process has exited. */
  kill(signal: Deno.Signal): void {
    if (!Number.isNaN(this.exitedAt)) return;
    try {
      this.#child.kill(signal);
    } catch {
      // It exited meanwhile.
    }
  }

  /** How it exited, for messages: `exited with code 0`, `was killed by SIGKILL`. */
  describeExit(): string {
    const status = this.status;
    if (status === undefined) return "is still running";
    return status.signal === null
      ? `exited with code ${status.code}`
      : `was killed by ${status.signal}`;
  }

  /** `message`, then the last line it printed on stderr, if any: `<message>: <line>`. */
  explain(message: string): string {
    const last = this.recentStderr.findLast((line) => line.trim() !== "");
    return last === undefined ? message : `${message}: ${last.trim()}`;
  }

  /** Kills it (SIGKILL) if it still runs, and waits until it exited and its output was read. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.kill("SIGKILL");
    await this.finished;
  }
}

async function feed(stdin: WritableStream<Uint8Array>, bytes: Uint8Array): Promise<void> {
  const writer = stdin.getWriter();
  try {
    await writer.write(bytes);
    await writer.close();
  } catch {
    // It exited before reading all of it; its exit status says why.
  }
}
