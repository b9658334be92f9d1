/**
 * An entry script of this repository run as a child Deno process, with exactly the permissions
 * its shebang line asks for, and its output read line by line as it comes.
 *
 * @module
 */

import { readLines } from "./read_lines.ts";

/** The repository root: where the entry scripts are. */
const ROOT = new URL("../../", import.meta.url);

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
   * Called with each line it prints on stdout, without the `\n`.
   * @default {() => {}}
   */
  onStdout?: (line: string) => void;
  /**
   * Called with each line it prints on stderr, without the `\n`.
   * @default {() => {}}
   */
  onStderr?: (line: string) => void;
  /**
   * Called once it has exited and all its output has been read.
   * @default {() => {}}
   */
  onExit?: (status: Deno.CommandStatus) => void;
}

/**
 * Starts `script` with Deno: `deno run <permissions> <script> <args>`, stdin closed, stdout and
 * stderr read line by line.
 */
export function spawnScript(
  script: string,
  args: readonly string[],
  options: SpawnScriptOptions,
): ScriptProcess {
  const {
    permissions,
    env = {},
    detached = false,
    root = ROOT,
    onStdout = () => {},
    onStderr = () => {},
    onExit = () => {},
  } = options;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...permissions, script, ...args],
    cwd: root,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    detached,
  }).spawn();
  return new ScriptProcess(child, { onStdout, onStderr, onExit });
}

/** A script running as its own process; see {@linkcode spawnScript}. */
export class ScriptProcess {
  /** The exit status, once the process has exited and its output has been read. */
  status: Deno.CommandStatus | undefined;
  /** Resolves with {@linkcode status}. */
  readonly finished: Promise<Deno.CommandStatus>;
  #child: Deno.ChildProcess;

  /** Follows `child`, whose stdout and stderr must be piped. */
  constructor(
    child: Deno.ChildProcess,
    callbacks: Required<Pick<SpawnScriptOptions, "onStdout" | "onStderr" | "onExit">>,
  ) {
    this.#child = child;
    this.finished = Promise.all([
      readLines(child.stdout, callbacks.onStdout),
      readLines(child.stderr, callbacks.onStderr),
      child.status,
    ]).then(([, , status]) => {
      this.status = status;
      callbacks.onExit(status);
      return status;
    });
  }

  /** Sends `signal` unless the process has exited. */
  kill(signal: Deno.Signal): void {
    if (this.status !== undefined) return;
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
}
