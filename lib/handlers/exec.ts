/**
 * Real work: a task runs a shell command with the task body on its stdin. The body never becomes
 * part of the command line, so no task can inject shell syntax.
 *
 * @module
 */

import type { Task } from "../consume/task.ts";
import { readLines } from "../io/read_lines.ts";

/** Variables of the worker's environment that a task's command never sees. */
export const CREDENTIAL_VARIABLES = ["AMQP_URL", "AMQP_URL_FILE", "AMQP_MANAGEMENT_URL"] as const;

/** Options for {@linkcode execTask}. */
export interface ExecTaskOptions {
  /**
   * Aborting it stops the command: SIGTERM to its process group, then SIGKILL after `killGrace`.
   * @default {undefined}
   */
  signal?: AbortSignal;
  /**
   * Milliseconds between SIGTERM and SIGKILL.
   * @default {5000}
   */
  killGrace?: number;
  /**
   * Receives each line the command prints, already prefixed with the task id.
   * @default {() => {}}
   */
  onOutput?: (stream: "stdout" | "stderr", line: string) => void;
}

/**
 * Runs `command` through `sh -c` for `task`: the body on stdin, and `TASK_ID`, `TASK_ATTEMPT`,
 * `TASK_REDELIVERED` in the environment, which is the worker's without
 * {@linkcode CREDENTIAL_VARIABLES}. Resolves when it exits 0.
 *
 * @throws {Error} whose message is the failure reason: `exit code 3`, `signal SIGSEGV`,
 * `cannot start sh: ...`, or the abort reason when `signal` stopped it.
 */
export async function execTask(
  command: string,
  task: Task,
  options: ExecTaskOptions = {},
): Promise<void> {
  const { signal, killGrace = 5000, onOutput = () => {} } = options;
  signal?.throwIfAborted();
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("sh", {
      // The command is often code the operator does not control: it must not find the broker's
      // credentials in its environment. The outer shell drops them and becomes the command.
      args: ["-c", `unset ${CREDENTIAL_VARIABLES.join(" ")}; exec sh -c "$1"`, "sh", command],
      env: {
        TASK_ID: task.id,
        TASK_ATTEMPT: String(task.attempt),
        TASK_REDELIVERED: String(task.redelivered),
      },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      // Its own process group, so that a timeout stops whatever the command started too.
      detached: true,
    }).spawn();
  } catch (error) {
    throw new Error(`cannot start sh: ${(error as Error).message}`);
  }
  let killTimer: ReturnType<typeof setTimeout> | undefined;
  const stop = () => {
    killGroup(child.pid, "SIGTERM");
    killTimer = setTimeout(() => killGroup(child.pid, "SIGKILL"), killGrace);
  };
  signal?.addEventListener("abort", stop, { once: true });
  const prefix = `[${task.id}] `;
  try {
    const [status] = await Promise.all([
      child.status,
      feed(child.stdin, task.body),
      readLines(child.stdout, (line) => onOutput("stdout", prefix + line)),
      readLines(child.stderr, (line) => onOutput("stderr", prefix + line)),
    ]);
    if (signal?.aborted) throw signal.reason;
    if (status.signal) throw new Error(`signal ${status.signal}`);
    if (status.code !== 0) throw new Error(`exit code ${status.code}`);
  } finally {
    signal?.removeEventListener("abort", stop);
    clearTimeout(killTimer);
  }
}

function killGroup(pid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(-pid, signal);
  } catch {
    // Already gone.
  }
}

async function feed(stdin: WritableStream<Uint8Array>, body: Uint8Array): Promise<void> {
  const writer = stdin.getWriter();
  try {
    await writer.write(body);
    await writer.close();
  } catch {
    // A command that does not read its input closes the pipe early; that is its business.
  }
}
