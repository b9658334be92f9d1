/**
 * The library as a package: deno.json names it, `deno publish` ships the library and its docs and
 * nothing else, and every export of mod.ts is documented with an example. `deno task ok` also
 * runs `deno doc --lint`, `deno check --doc` and `deno publish --dry-run`; these tests pin what
 * those commands do not check themselves.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const ROOT = new URL("../", import.meta.url);

/** Runs `deno ARGS` in the project's root; resolves with its output, failing on a non-zero exit. */
async function deno(args: string[]): Promise<{ stdout: string; stderr: string }> {
  const { success, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
  }).output();
  const decoder = new TextDecoder();
  const result = { stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
  assert.ok(success, `deno ${args.join(" ")} failed:\n${result.stderr}`);
  return result;
}

Deno.test("deno.json names the package, its version, license and entry point", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  assert.equal(config.name, "@workqueue/rabbitmq");
  assert.match(config.version, /^\d+\.\d+\.\d+$/);
  assert.equal(config.license, "MIT");
  assert.deepEqual(config.exports, { ".": "./mod.ts" });
  assert.match(await Deno.readTextFile(new URL("LICENSE", ROOT)), /^MIT License\n/);
});

Deno.test("deno publish ships mod.ts, lib/, README.md, LICENSE and deno.json, and nothing else", async () => {
  const { stdout, stderr } = await deno(["publish", "--dry-run", "--allow-dirty"]);
  const root = fileURLToPath(ROOT);
  const files = [...`${stdout}\n${stderr}`.matchAll(/^\s+file:\/\/(\S+) \(/gm)]
    .map((match) => decodeURIComponent(match[1]!).slice(root.length));
  assert.ok(files.length > 0, `no file list in:\n${stderr}`);
  for (const file of files) {
    assert.ok(
      ["mod.ts", "README.md", "LICENSE", "deno.json"].includes(file) || file.startsWith("lib/"),
      `${file} is not part of the library`,
    );
  }
  for (const file of ["mod.ts", "README.md", "LICENSE", "deno.json", "lib/client/connection.ts"]) {
    assert.ok(files.includes(file), `${file} is published`);
  }
});

/** One symbol of `deno doc --json`, as far as this test reads it. */
interface DocSymbol {
  name: string;
  declarations: { jsDoc?: { doc?: string; tags?: { kind: string }[] } }[];
}

Deno.test("every export of mod.ts has a doc comment with an @example", async () => {
  const { stdout } = await deno(["doc", "--json", "mod.ts"]);
  const nodes = JSON.parse(stdout).nodes as Record<string, { symbols: DocSymbol[] }>;
  const symbols = Object.values(nodes).flatMap((node) => node.symbols);
  assert.ok(symbols.length >= 20, `mod.ts exports ${symbols.length} symbols`);
  const undocumented = symbols.filter((symbol) =>
    !symbol.declarations.some((declaration) =>
      (declaration.jsDoc?.doc ?? "").trim() !== "" &&
      declaration.jsDoc?.tags?.some((tag) => tag.kind === "example")
    )
  ).map((symbol) => symbol.name);
  assert.deepEqual(undocumented, [], "exports without a doc comment and an @example");
});
