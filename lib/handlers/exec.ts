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
 * {@linkcode CREDENTIAL_VARIABLES}. Resolves when it exits 0: with its standard output when the
 * task is awaited (up to {@linkcode MAX_RESULT_OUTPUT} bytes; past that it is printed instead).
 *
 * @throws {Error} whose message is the failure reason: `exit code 3`, `signal SIGSEGV`,
 * `cannot start sh: ...`, or the abort reason when `signal` stopped it.
 */
export async function execTask(
  command: string,
  task: Task,
  options: ExecTaskOptions = {},
): Promise<string | undefined> {
  const { signal, killGrace = 5000, onOutput = () => {} } = options;
  signal?.throwIfAborted();
  let child: Deno.ChildProcess;
  try {
    child = spawnCommand(command, {
      TASK_ID: task.id,
      TASK_ATTEMPT: String(task.attempt),
      TASK_REDELIVERED: String(task.redelivered),
    });
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
  RUNNING.add(child.pid);
  // A process the command left behind (`setsid sleep 45 &`) may hold the pipes open long after
  // the command ended: once it has, its output is waited for only briefly.
  const pipes = new AbortController();
  const cut = { signal: pipes.signal }; // reading ends when the pipes are cut
  // A producer that waits gets the command's standard output as the task's result instead.
  let captured: string[] | undefined = task.awaited ? [] : undefined;
  let capturedBytes = 0;
  const onStdout = (line: string) => {
    if (captured === undefined) return onOutput("stdout", prefix + line);
    capturedBytes += line.length + 1;
    if (capturedBytes <= MAX_RESULT_OUTPUT) captured.push(line);
    else {
      // Too much for a result: printed as when nobody waits, from its first line.
      for (const earlier of captured) onOutput("stdout", prefix + earlier);
      captured = undefined;
      onOutput("stdout", prefix + line);
    }
  };
  const reading = Promise.all([
    readLines(child.stdout, onStdout, cut),
    readLines(child.stderr, (line) => onOutput("stderr", prefix + line), cut),
  ]).catch(() => {});
  const feeding = feed(child.stdin, task.body, pipes.signal);
  try {
    const status = await child.status;
    RUNNING.delete(child.pid);
    let lingering: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all([reading, feeding]),
      new Promise((resolve) => lingering = setTimeout(resolve, PIPE_GRACE_MS)),
    ]);
    clearTimeout(lingering);
    pipes.abort();
    await Promise.all([reading, feeding]);
    if (signal?.aborted) throw signal.reason;
    if (status.signal) throw new Error(`signal ${status.signal}`);
    if (status.code !== 0) throw new Error(`exit code ${status.code}`);
    return captured?.join("\n");
  } finally {
    RUNNING.delete(child.pid);
    signal?.removeEventListener("abort", stop);
    clearTimeout(killTimer);
  }
}

/**
 * Starts `sh -c command` with `env` added, without the broker's credentials, in a session (and so
 * a process group) of its own: a timeout then stops whatever the command started too, and a
 * signal from the worker's terminal reaches only the worker, which decides what to do.
 */
function spawnCommand(command: string, env: Record<string, string>): Deno.ChildProcess {
  // The command is often code the operator does not control: it must not find the broker's
  // credentials in its environment. The shell drops them first; the command is the operator's
  // --exec text, never a task's body (that goes to stdin).
  const script = `unset ${CREDENTIAL_VARIABLES.join(" ")}; ${command}`;
  const options = { env, stdin: "piped", stdout: "piped", stderr: "piped" } as const;
  if (setsid !== false) {
    try {
      // setsid(1) makes the session and becomes sh: Deno's `detached` does the same in a forked
      // copy of the whole worker, which measured twice as slow per task.
      return new Deno.Command("setsid", { ...options, args: ["sh", "-c", script] }).spawn();
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      setsid = false;
    }
  }
  return new Deno.Command("sh", { ...options, args: ["-c", script], detached: true }).spawn();
}

/** Whether setsid(1) is there (util-linux, busybox); false once it was found missing. */
let setsid: boolean | undefined;

/** The most standard output sent as a waited task's result, in bytes (about). */
export const MAX_RESULT_OUTPUT = 65_536;

/** How long output is still read after the command exited, in milliseconds. */
const PIPE_GRACE_MS = 1000;

/** The process groups of the commands running now. */
const RUNNING = new Set<number>();

/**
 * Kills every command still running, with its whole process group (SIGKILL): for a worker that
 * exits without waiting for its tasks, so that none of them runs on beside the redelivered copy.
 */
export function killRunningCommands(): void {
  for (const pid of RUNNING) killGroup(pid, "SIGKILL");
  RUNNING.clear();
}

function killGroup(pid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(-pid, signal);
  } catch {
    // Already gone.
  }
}

async function feed(
  stdin: WritableStream<Uint8Array>,
  body: Uint8Array,
  signal: AbortSignal,
): Promise<void> {
  const writer = stdin.getWriter();
  const abort = () => void writer.abort().catch(() => {});
  signal.addEventListener("abort", abort, { once: true });
  try {
    await writer.write(body);
    await writer.close();
  } catch {
    // A command that does not read its input closes the pipe early; that is its business.
  } finally {
    signal.removeEventListener("abort", abort);
  }
}
