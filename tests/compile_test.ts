/**
 * `deno task compile`: dist/new_task and dist/worker, built with the permissions of the scripts'
 * shebang lines baked in; and `deno task compile:worker HANDLER_FILE`: a worker binary with a
 * handler module built in.
 *
 * The compile task in deno.json is the one source of truth: the tests read its `deno compile`
 * commands, check their permissions against the shebangs, and build the binaries by running
 * those same commands with only `--output` redirected to a temporary directory. The worker with
 * a built-in handler is built by running tools/compile_worker.ts itself, as the task does.
 *
 * `deno compile` downloads its runtime (denort) from dl.deno.land unless `DENORT_BIN` names a
 * local copy. Where it can do neither, the build-and-run tests are reported as ignored, with the
 * reason in their names; any other build failure fails them. They never pass without building.
 * The entry module tools/compile_worker.ts generates is type-checked without a runtime, so that
 * test always runs.
 *
 * @module
 */

import assert from "node:assert/strict";
import { basename, dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import {
  BROKER_URL,
  openBroker,
  runScript,
  scriptPermissions,
  ScriptProcess,
  startScript,
  uniqueQueue,
} from "./_helpers.ts";

const ROOT = new URL("../", import.meta.url);
const COMPILE_WORKER = "tools/compile_worker.ts";

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
// Permissions, and the V8 flags the shebang runs the script with (a compiled binary bakes both in).
function permissionFlags(flags: string[]): string[] {
  return flags.filter((flag) => /^(-A$|--allow-|--deny-|--v8-flags=)/.test(flag));
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

/**
 * The modules `script` imports by a computed URL (`new URL("./x.ts", import.meta.url)`, so that
 * Deno does not read them before they are needed): deno compile cannot see those and must be told.
 */
function computedImports(script: string): string[] {
  const source = Deno.readTextFileSync(new URL(script, ROOT));
  return [...source.matchAll(/new URL\("\.\/([\w/]+\.ts)", import\.meta\.url\)/g)].map((m) =>
    m[1]!
  );
}

Deno.test("deno task compile includes the modules the scripts import by a computed URL", () => {
  const steps = compileSteps();
  assert.deepEqual(computedImports("new_task.ts"), ["commands/send.ts"]);
  for (const step of steps) {
    const included = step.flags.filter((flag) => flag.startsWith("--include=")).map((flag) =>
      flag.slice("--include=".length)
    );
    assert.deepEqual(included.toSorted(), computedImports(step.script).toSorted(), step.command);
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
 * What a failed `deno compile` (`what`, for the message) came to, from its stderr. Only a failure
 * to get the runtime (its download from dl.deno.land, with no `DENORT_BIN` set) counts as
 * "no-runtime"; a bare "error sending request" could as well be the npm registry, so it does not.
 */
function buildFailure(what: string, stderr: string): Exclude<Build, { kind: "built" }> {
  if (Deno.env.get("DENORT_BIN") === undefined && /denort|dl\.deno\.land/.test(stderr)) {
    const lines = stderr.split("\n").map((line) => line.trim());
    const cause = lines.find((line) => line.includes("error sending request")) ??
      lines.find((line) => line.includes("denort"));
    return { kind: "no-runtime", detail: cause ?? stderr.trim() };
  }
  return { kind: "failed", error: `${what} failed:\n${stderr}` };
}

/** Builds the binaries into a temporary directory, as the compile task would into dist/. */
async function build(): Promise<Build> {
  let dir: string | undefined;
  try {
    const steps = compileSteps();
    dir = await Deno.makeTempDir({ prefix: "compile_test_" });
    for (const step of steps) {
      const stderr = await compileInto(step, dir);
      if (stderr === undefined) continue;
      await Deno.remove(dir, { recursive: true });
      return buildFailure(`"${step.command}"`, stderr);
    }
    return { kind: "built", dir };
  } catch (error) {
    if (dir !== undefined) await Deno.remove(dir, { recursive: true }).catch(() => {});
    return { kind: "failed", error: `Cannot build the binaries: ${error}` };
  }
}

/** Starts a compiled binary against the test broker, its output collected. */
function startBinary(path: string, args: string[], stdin?: string): ScriptProcess {
  const child = new Deno.Command(path, {
    args,
    env: { AMQP_URL: BROKER_URL, NO_COLOR: "1" },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  return new ScriptProcess(`${basename(path)} ${args.join(" ")}`, child, stdin);
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
      // --stdin runs code the binary holds only because the compile task includes it.
      await using lines = startBinary(
        join(dir, "new_task"),
        ["--queue", queue, "--stdin"],
        "Piped.\n",
      );
      assert.equal((await lines.status()).code, 0, lines.transcript());
      await worker.waitForLines(/^ \[x\] Received 'Piped\.'$/);
      await worker.waitForLines(/^ \[x\] Done$/, 2);
      assert.deepEqual(worker.stdout, [
        " [*] Waiting for messages. To exit press CTRL+C",
        " [x] Received 'Compiled.'",
        " [x] Done",
        " [x] Received 'Piped.'",
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

/**
 * Registers the test `name` that runs `fn` on what `build` built; ignored, with the reason, when
 * `deno compile` could not get its runtime; failing with the build's error otherwise.
 */
function testBuilt(name: string, built: Build, fn: (dir: string) => Promise<void>): void {
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
      Deno.test(name, () => fn(dir));
      break;
    }
    case "no-runtime": {
      const reason = "deno compile cannot download its runtime here; set DENORT_BIN";
      console.warn(`compile_test.ts: ${name}: ignored: ${reason} (${built.detail})`);
      Deno.test({ name: `${name} (ignored: ${reason})`, ignore: true, fn() {} });
      break;
    }
    case "failed": {
      const { error } = built;
      Deno.test(name, () => {
        throw new Error(error);
      });
      break;
    }
  }
}

testBuilt("compiled binaries send and work a task", await build(), sendAndWorkATask);

// --- deno task compile:worker HANDLER_FILE: a worker with its handler built in.

/**
 * The handler built into the compiled worker. It prints a line of its own, so the test can tell
 * it from the tutorial's dots, and imports the library by its package name, as a handler kept
 * outside this repository would.
 */
const SHOUT_HANDLER = `import { PermanentError, type TaskHandler } from "@workqueue/rabbitmq";

const shout: TaskHandler = (task) => {
  if (task.body.length === 0) throw new PermanentError("empty task");
  console.log(\`built-in handler: \${task.text().toUpperCase()}\`);
};
export default shout;
`;

/** Writes a handler module named `name` (unique per run) with `source` into a new temp dir. */
async function writeHandler(name: string, source: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "compile_worker_test_" });
  const path = join(dir, `${name}_${crypto.randomUUID().slice(0, 8)}.ts`);
  await Deno.writeTextFile(path, source);
  return path;
}

/** The entry module tools/compile_worker.ts writes for the binary `binary`. */
function entryPath(binary: string): string {
  return fileURLToPath(new URL(`dist/${binary}.entry.ts`, ROOT));
}

/** `deno check` of `module`, from the project's root (its deno.json); resolves with stderr. */
async function denoCheck(module: string): Promise<{ success: boolean; stderr: string }> {
  const { success, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["check", module],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  return { success, stderr: new TextDecoder().decode(stderr) };
}

Deno.test("compile_worker.ts --entry-only writes an entry module that deno check type-checks", async () => {
  const good = await writeHandler("shout", SHOUT_HANDLER);
  const bad = await writeHandler("bad", 'export default "not a function";\n');
  const binary = `worker-${basename(good, ".ts")}`;
  const badBinary = `worker-${basename(bad, ".ts")}`;
  try {
    const result = await runScript(COMPILE_WORKER, ["--entry-only", good]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, entryPath(binary), "prints the entry module's path");
    const entry = await Deno.readTextFile(entryPath(binary));
    assert.ok(entry.includes(`import handler from "${pathToFileURL(good).href}";`), entry);
    assert.ok(entry.includes(`import { main } from "../worker.ts";`), entry);
    assert.ok(entry.includes("await main(Deno.args, { handler })"), entry);
    const checked = await denoCheck(entryPath(binary));
    assert.ok(checked.success, `deno check of the entry module failed:\n${checked.stderr}`);

    // The check is what catches a module whose default export is not a handler.
    assert.equal((await runScript(COMPILE_WORKER, ["--entry-only", bad])).code, 0);
    const refused = await denoCheck(entryPath(badBinary));
    assert.equal(refused.success, false, "a default export that is not a handler fails the check");
    assert.match(refused.stderr, /not assignable to type 'TaskHandler'/);
  } finally {
    for (const path of [entryPath(binary), entryPath(badBinary), dirname(good), dirname(bad)]) {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    }
  }
});

Deno.test("compile_worker.ts exits 2 without a handler module, or with one that does not exist", async () => {
  const none = await runScript(COMPILE_WORKER, []);
  assert.equal(none.code, 2, none.stderr);
  assert.match(none.stderr, /^Missing HANDLER_FILE: /);
  const missing = await runScript(COMPILE_WORKER, ["no/such/handler.ts"]);
  assert.equal(missing.code, 2, missing.stderr);
  assert.match(missing.stderr, /^Cannot use handler module "no\/such\/handler\.ts": no such file/);
});

/** The compiled worker's file name; unique, as is the entry module named after it in dist/. */
const SHOUT_BINARY = `worker-shout-${crypto.randomUUID().slice(0, 8)}`;

/** The compiled worker with {@linkcode SHOUT_HANDLER} built in, built by compile_worker.ts. */
async function buildWorkerWithHandler(): Promise<Build> {
  let dir: string | undefined;
  let handler: string | undefined;
  try {
    dir = await Deno.makeTempDir({ prefix: "compile_test_" });
    handler = await writeHandler("shout", SHOUT_HANDLER);
    const output = join(dir, SHOUT_BINARY);
    const tool = startScript(COMPILE_WORKER, ["--output", output, handler]);
    const { code } = await tool.status(BUILD_TIMEOUT_MS);
    await Deno.remove(entryPath(basename(output))).catch(() => {});
    if (code === 0) return { kind: "built", dir };
    await Deno.remove(dir, { recursive: true });
    return buildFailure(`compile_worker.ts (exit ${code})`, tool.stderr.join("\n"));
  } catch (error) {
    if (dir !== undefined) await Deno.remove(dir, { recursive: true }).catch(() => {});
    return { kind: "failed", error: `Cannot build the worker with a built-in handler: ${error}` };
  } finally {
    if (handler !== undefined) await Deno.remove(dirname(handler), { recursive: true });
  }
}

/**
 * A worker with {@linkcode SHOUT_HANDLER} built in (`start` runs it with the given arguments)
 * runs that handler for a task, not the dots, and refuses --exec.
 */
async function workATaskWithTheBuiltInHandler(
  start: (args: string[]) => ScriptProcess,
): Promise<void> {
  const queue = uniqueQueue("built_in_handler");
  await using broker = await openBroker();
  try {
    const refused = start(["--queue", queue, "--exec", "cat"]);
    assert.equal((await refused.status()).code, 2, refused.transcript());
    assert.match(refused.stderr[0] ?? "", /^This worker has its handler built in: /);

    await using worker = start(["--queue", queue]);
    await worker.waitForLines(/^ \[\*\] Waiting for messages/);
    await broker.publish(queue, "built in");
    await worker.waitForLines(/^ \[x\] Done$/);
    assert.deepEqual(worker.matching(/built-in handler/), ["built-in handler: BUILT IN"]);
    assert.deepEqual(worker.matching(/^ \[x\] Received/), [" [x] Received 'built in'"]);
    worker.kill("SIGINT");
    assert.equal((await worker.status()).code, 0, worker.transcript());
  } finally {
    await broker.deleteQueues(queue, `${queue}.dead`);
  }
}

Deno.test("the entry module compile_worker.ts writes, run with worker.ts's permissions, does a task with its handler", async () => {
  const handler = await writeHandler("shout", SHOUT_HANDLER);
  const entry = entryPath(`worker-${basename(handler, ".ts")}`);
  try {
    assert.equal((await runScript(COMPILE_WORKER, ["--entry-only", handler])).code, 0);
    await workATaskWithTheBuiltInHandler((args) => {
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", ...scriptPermissions("worker.ts"), entry, ...args],
        cwd: ROOT,
        env: { AMQP_URL: BROKER_URL, NO_COLOR: "1" },
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      return new ScriptProcess(`${basename(entry)} ${args.join(" ")}`, child);
    });
  } finally {
    await Deno.remove(entry).catch(() => {});
    await Deno.remove(dirname(handler), { recursive: true });
  }
});

testBuilt(
  "a compiled worker with a built-in handler module does a task",
  await buildWorkerWithHandler(),
  async (dir) => {
    try {
      await workATaskWithTheBuiltInHandler((args) => startBinary(join(dir, SHOUT_BINARY), args));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
