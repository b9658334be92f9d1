/**
 * The programs under test as whole processes, run by `lib/io/script_process.ts`: started with
 * `deno run` and the permissions of their shebang lines, as a user starts them, and timed from
 * spawn to exit; here every wait on them gets a deadline.
 *
 * @module
 */

import { scriptPermissions, type ScriptProcess, spawnScript } from "../lib/io/script_process.ts";
import { type Deadline, TimeoutError } from "./_deadline.ts";

export type { ScriptProcess };

/** The project's root, where the entry scripts are. */
export const ROOT = new URL("../", import.meta.url);

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
   * @default {() => {}}
   */
  onLine?: (line: string, at: number) => void;
}

/** Starts `script` (relative to the root) with the permissions of its shebang line. */
export async function startScript(
  script: string,
  args: readonly string[],
  options: StartOptions,
): Promise<ScriptProcess> {
  const { url, stdin, onLine } = options;
  return spawnScript(script, args, {
    permissions: await scriptPermissions(script, { root: ROOT }),
    env: { AMQP_URL: url, NO_COLOR: "1" },
    root: ROOT,
    // What the bench's --allow-run=deno lets it run.
    deno: "deno",
    ...(stdin === undefined ? {} : { stdin }),
    ...(onLine === undefined ? {} : { onStdout: onLine }),
  });
}

/**
 * Waits for `process` to exit and its output to be read.
 *
 * @throws {TimeoutError} when `deadline` passes first; the process is then killed.
 */
export async function exit(
  process: ScriptProcess,
  deadline: Deadline,
): Promise<Deno.CommandStatus> {
  try {
    return await deadline.race(process.finished, `${process.name} to exit`);
  } catch (error) {
    process.kill("SIGKILL");
    if (error instanceof TimeoutError) throw new TimeoutError(process.explain(error.message));
    throw error;
  }
}

/**
 * Waits for `process` to exit 0.
 *
 * @throws {Error} when it exits with another code, naming it and its last line on stderr.
 * @throws {TimeoutError} when `deadline` passes first.
 */
export async function succeed(process: ScriptProcess, deadline: Deadline): Promise<void> {
  const { code } = await exit(process, deadline);
  if (code !== 0) throw new Error(process.explain(`${process.name} exited with code ${code}`));
}

/** Runs `script` to a successful exit; resolves with the wall-clock ms from spawn to exit. */
export async function runScript(
  script: string,
  args: readonly string[],
  options: StartOptions & { deadline: Deadline },
): Promise<number> {
  await using process = await startScript(script, args, options);
  await succeed(process, options.deadline);
  return process.exitedAt - process.startedAt;
}
