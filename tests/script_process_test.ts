import assert from "node:assert/strict";
import { scriptPermissions, spawnScript } from "../lib/io/script_process.ts";

/** A folder of its own holding one script `name` with `lines`; removed on dispose. */
async function scratchScript(name: string, lines: string[]) {
  const root = new URL(`file://${await Deno.makeTempDir()}/`);
  await Deno.writeTextFile(new URL(name, root), lines.join("\n"));
  return {
    root,
    permissions: await scriptPermissions(name, { root }),
    async [Symbol.asyncDispose]() {
      await Deno.remove(root, { recursive: true });
    },
  };
}

Deno.test("scriptPermissions() of demo.ts are the permissions deno task demo runs it with", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  const task = String(config.tasks.demo).split(/\s+/);
  assert.deepEqual(task.slice(0, 2), ["deno", "run"]);
  assert.equal(task.at(-1), "demo.ts");
  assert.deepEqual(await scriptPermissions("demo.ts"), task.slice(2, -1));
});

Deno.test("scriptPermissions() rejects a file without a deno run shebang with TypeError", async () => {
  await assert.rejects(
    scriptPermissions("lib/amqp.ts"),
    new TypeError(`Cannot run lib/amqp.ts: it has no "deno run" shebang line`),
  );
});

Deno.test("spawnScript() runs a script with its shebang's permissions and reads its lines", async () => {
  await using script = await scratchScript("greet.ts", [
    "#!/usr/bin/env -S deno run --allow-env=GREETING",
    "console.log(`${Deno.env.get('GREETING')}, ${Deno.args.join(' ')}`);",
    "console.error('to stderr');",
    "await Deno.stdout.write(new TextEncoder().encode('no newline'));",
    "Deno.exit(3);",
  ]);
  assert.deepEqual(script.permissions, ["--allow-env=GREETING"]);
  const stdout: string[] = [];
  const stderr: string[] = [];
  let exited: Deno.CommandStatus | undefined;
  const child = spawnScript("greet.ts", ["dear", "reader"], {
    permissions: script.permissions,
    env: { GREETING: "Hello" },
    root: script.root,
    onStdout: (line) => stdout.push(line),
    onStderr: (line) => stderr.push(line),
    onExit: (status) => exited = status,
  });
  assert.equal(child.describeExit(), "is still running");
  const status = await child.finished;
  assert.deepEqual(stdout, ["Hello, dear reader", "no newline"]);
  assert.deepEqual(stderr, ["to stderr"]);
  assert.equal(status.code, 3);
  assert.equal(exited, status);
  assert.equal(child.status, status);
  assert.equal(child.describeExit(), "exited with code 3");
});

Deno.test("spawnScript() gives a script no permission its shebang does not ask for", async () => {
  await using script = await scratchScript("nosy.ts", [
    "#!/usr/bin/env -S deno run --allow-env=OTHER",
    "console.log(Deno.env.get('HOME'));",
  ]);
  const stderr: string[] = [];
  const child = spawnScript("nosy.ts", [], {
    permissions: script.permissions,
    root: script.root,
    onStderr: (line) => stderr.push(line),
  });
  assert.notEqual((await child.finished).code, 0);
  assert.match(stderr.join("\n"), /NotCapable|PermissionDenied|Requires env access/);
});

Deno.test("ScriptProcess.kill() stops the process; describeExit() names the signal", async () => {
  await using script = await scratchScript("wait.ts", [
    "#!/usr/bin/env -S deno run --allow-env=OTHER",
    "console.log('ready');",
    "setInterval(() => {}, 1000);",
  ]);
  const ready = Promise.withResolvers<void>();
  const child = spawnScript("wait.ts", [], {
    permissions: script.permissions,
    root: script.root,
    onStdout: (line) => line === "ready" && ready.resolve(),
  });
  await ready.promise;
  child.kill("SIGTERM");
  assert.equal((await child.finished).signal, "SIGTERM");
  assert.equal(child.describeExit(), "was killed by SIGTERM");
  child.kill("SIGTERM"); // Once it has exited, a no-op.
});

Deno.test("spawnScript() writes stdin to the script; exitedAt - startedAt is its run; explain() quotes its last stderr line", async () => {
  await using script = await scratchScript("echo.ts", [
    "#!/usr/bin/env -S deno run --allow-env=OTHER",
    "const text = await new Response(Deno.stdin.readable).text();",
    "console.log(text.toUpperCase());",
    "console.error('first');",
    "console.error('  last words  ');",
    "Deno.exit(4);",
  ]);
  const lines: Array<[string, number]> = [];
  const child = spawnScript("echo.ts", [], {
    permissions: script.permissions,
    root: script.root,
    stdin: "one\ntwo",
    onStdout: (line, at) => lines.push([line, at]),
  });
  assert.equal(child.name, "echo.ts");
  assert.ok(Number.isNaN(child.exitedAt), "no exit time while it runs");
  await child.finished;
  assert.deepEqual(lines.map(([line]) => line), ["ONE", "TWO"]);
  for (const [, at] of lines) assert.ok(child.startedAt < at && at <= performance.now());
  assert.ok(child.startedAt < child.exitedAt && child.exitedAt <= performance.now());
  assert.deepEqual(child.recentStderr, ["first", "  last words  "]);
  assert.equal(
    child.explain("echo.ts exited with code 4"),
    "echo.ts exited with code 4: last words",
  );
});

Deno.test("ScriptProcess disposal kills a script that still runs and waits for it", async () => {
  let child: ReturnType<typeof spawnScript> | undefined;
  {
    await using script = await scratchScript("forever.ts", [
      "#!/usr/bin/env -S deno run --allow-env=OTHER",
      "console.log('ready');",
      "setInterval(() => {}, 1000);",
    ]);
    const ready = Promise.withResolvers<void>();
    await using process = spawnScript("forever.ts", [], {
      permissions: script.permissions,
      root: script.root,
      onStdout: (line) => line === "ready" && ready.resolve(),
    });
    child = process;
    await ready.promise;
  }
  assert.equal(child.status?.signal, "SIGKILL");
});
