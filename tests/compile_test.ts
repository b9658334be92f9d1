/**
 * `deno task compile`: dist/new_task and dist/worker, built with the permissions of the scripts'
 * shebang lines baked in.
 *
 * The compile task in deno.json is the one source of truth: the tests read its `deno compile`
 * commands, check their permissions against the shebangs, and build the binaries by running
 * those same commands with only `--output` redirected to a temporary directory.
 *
 * `deno compile` downloads its runtime (denort) from dl.deno.land unless `DENORT_BIN` names a
 * local copy. Where it can do neither, the build-and-run test is reported as ignored, with the
 * reason in its name; any other build failure fails it. It never passes without building.
 *
 * @module
 */

import assert from "node:assert/strict";
import { basename, join } from "node:path";
import {
  BROKER_URL,
  openBroker,
  scriptPermissions,
  ScriptProcess,
  uniqueQueue,
} from "./_helpers.ts";

const ROOT = new URL("../", import.meta.url);

/** The entry scripts the compile task must build, and the binary each becomes. */
const EXPECTED_OUTPUTS: Record<string, string> = {
  "new_task.ts": "dist/new_task",
  "worker.ts": "dist/worker",
};

/** Milliseconds one `deno compile` may take (type check, npm packages, runtime download). */
const BUILD_TIMEOUT_MS = 180_000;

/** One `deno compile` command of the compile task. */
interface CompileStep {
  /** The command as written in deno.json. */
  command: string;
  /** The entry script, e.g. "new_task.ts". */
  script: string;
  /** The `--output` path, e.g. "dist/new_task". */
  output: string;
  /** Every flag but `--output`, in order. */
  flags: string[];
}

/** The compile task's command line from deno.json (a string, or an object with `command`). */
function compileTask(): string {
  const config = JSON.parse(Deno.readTextFileSync(new URL("deno.json", ROOT)));
  const task: unknown = config?.tasks?.compile;
  const command = typeof task === "object" && task !== null
    ? (task as { command?: unknown }).command
    : task;
  if (typeof command !== "string") throw new TypeError('deno.json has no "compile" task command');
  return command;
}

/**
 * The compile task as `deno compile` steps joined by `&&`. Deliberately strict: a flag's value
 * must be written as `--flag=value` (except `--output PATH`), and nothing may follow the script,
 * so no argument is silently left out of the build the test makes.
 */
function compileSteps(): CompileStep[] {
  return compileTask().split("&&").map((part) => {
    const command = part.trim();
    const words = command.split(/\s+/);
    if (words[0] !== "deno" || words[1] !== "compile") {
      throw new Error(`Compile task step is not "deno compile ...": "${command}"`);
    }
    const flags: string[] = [];
    let output: string | undefined;
    let script: string | undefined;
    for (let i = 2; i < words.length; i++) {
      const word = words[i] ?? "";
      if (word === "--output" || word === "-o") output = words[++i];
      else if (word.startsWith("--output=")) output = word.slice("--output=".length);
      else if (script !== undefined) {
        throw new Error(`Compile task step has "${word}" after its script: "${command}"`);
      } else if (word.startsWith("-")) flags.push(word);
      else script = word;
    }
    if (script === undefined || output === undefined) {
      throw new Error(`Compile task step needs a script and --output: "${command}"`);
    }
    return { command, script, output, flags };
  });
}

/** The permission flags among `flags`. */
function permissionFlags(flags: string[]): string[] {
  return flags.filter((flag) => /^(-A$|--allow-|--deny-)/.test(flag));
}

Deno.test("deno task compile builds dist/new_task and dist/worker with the shebangs' permissions", () => {
  const steps = compileSteps();
  assert.deepEqual(
    Object.fromEntries(steps.map((step) => [step.script, step.output])),
    EXPECTED_OUTPUTS,
  );
  assert.equal(steps.length, Object.keys(EXPECTED_OUTPUTS).length, "one build per script");
  for (const step of steps) {
    assert.deepEqual(
      permissionFlags(step.flags).toSorted(),
      scriptPermissions(step.script).toSorted(),
      `"${step.command}" bakes in other permissions than ${step.script}'s shebang`,
    );
  }
});

/** What building the binaries came to. */
type Build =
  | { kind: "built"; dir: string }
  | { kind: "no-runtime"; detail: string }
  | { kind: "failed"; error: string };

/** Runs one compile step with its output redirected into `dir`; resolves with stderr on failure. */
async function compileInto(step: CompileStep, dir: string): Promise<string | undefined> {
  const timeout = new AbortController();
  const timer = setTimeout(() => timeout.abort(), BUILD_TIMEOUT_MS);
  try {
    const { success, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["compile", ...step.flags, "--output", join(dir, basename(step.output)), step.script],
      cwd: ROOT,
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: timeout.signal,
    }).output();
    if (success) return undefined;
    const text = new TextDecoder().decode(stderr);
    return timeout.signal.aborted ? `Timed out after ${BUILD_TIMEOUT_MS} ms:\n${text}` : text;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Builds the binaries into a temporary directory, as the compile task would into dist/. Only a
 * failure to get the runtime (its download from dl.deno.land, with no `DENORT_BIN` set) counts as
 * "no-runtime"; a bare "error sending request" could as well be the npm registry, so it does not.
 */
async function build(): Promise<Build> {
  let dir: string | undefined;
  try {
    const steps = compileSteps();
    dir = await Deno.makeTempDir({ prefix: "compile_test_" });
    for (const step of steps) {
      const stderr = await compileInto(step, dir);
      if (stderr === undefined) continue;
      await Deno.remove(dir, { recursive: true });
      if (Deno.env.get("DENORT_BIN") === undefined && /denort|dl\.deno\.land/.test(stderr)) {
        const lines = stderr.split("\n").map((line) => line.trim());
        const cause = lines.find((line) => line.includes("error sending request")) ??
          lines.find((line) => line.includes("denort"));
        return { kind: "no-runtime", detail: cause ?? stderr.trim() };
      }
      return { kind: "failed", error: `"${step.command}" failed:\n${stderr}` };
    }
    return { kind: "built", dir };
  } catch (error) {
    if (dir !== undefined) await Deno.remove(dir, { recursive: true }).catch(() => {});
    return { kind: "failed", error: `Cannot build the binaries: ${error}` };
  }
}

/** Starts a compiled binary against the test broker, its output collected. */
function startBinary(path: string, args: string[]): ScriptProcess {
  const child = new Deno.Command(path, {
    args,
    env: { AMQP_URL: BROKER_URL, NO_COLOR: "1" },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  return new ScriptProcess(`${basename(path)} ${args.join(" ")}`, child);
}

/** The end-to-end run: the compiled worker does a task the compiled producer sent. */
async function sendAndWorkATask(dir: string): Promise<void> {
  const queue = uniqueQueue("compiled");
  try {
    await using broker = await openBroker();
    try {
      await using worker = startBinary(join(dir, "worker"), ["--queue", queue, "--dot-ms", "10"]);
      await worker.waitForLines(/^ \[\*\] Waiting for messages/);
      await using producer = startBinary(join(dir, "new_task"), ["--queue", queue, "Compiled."]);
      assert.equal((await producer.status()).code, 0, producer.transcript());
      assert.deepEqual(producer.stdout, [" [x] Sent 'Compiled.'"], producer.transcript());
      await worker.waitForLines(/^ \[x\] Done$/);
      assert.deepEqual(worker.stdout, [
        " [*] Waiting for messages. To exit press CTRL+C",
        " [x] Received 'Compiled.'",
        " [x] Done",
      ]);
      worker.kill("SIGINT");
      assert.equal((await worker.status()).code, 0, worker.transcript());
    } finally {
      await broker.deleteQueues(queue);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const E2E_NAME = "compiled binaries send and work a task";
const built = await build();
switch (built.kind) {
  case "built": {
    const { dir } = built;
    // The test removes the binaries; this covers a run that filters the test out.
    globalThis.addEventListener("unload", () => {
      try {
        Deno.removeSync(dir, { recursive: true });
      } catch {
        // Already removed by the test.
      }
    });
    Deno.test(E2E_NAME, () => sendAndWorkATask(dir));
    break;
  }
  case "no-runtime": {
    const reason = "deno compile cannot download its runtime here; set DENORT_BIN";
    console.warn(`compile_test.ts: ${E2E_NAME}: ignored: ${reason} (${built.detail})`);
    Deno.test({ name: `${E2E_NAME} (ignored: ${reason})`, ignore: true, fn() {} });
    break;
  }
  case "failed": {
    const { error } = built;
    Deno.test(E2E_NAME, () => {
      throw new Error(error);
    });
    break;
  }
}
