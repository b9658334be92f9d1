/**
 * The Dockerfile cannot be built here (no Docker engine), so what a build needs of the repository
 * is checked instead: every module the worker can load is copied into the image, and the image
 * runs it with exactly its shebang's permissions.
 */

import assert from "node:assert/strict";
import { scriptPermissions } from "./_helpers.ts";

const ROOT = new URL("../", import.meta.url);
const DOCKERFILE = await Deno.readTextFile(new URL("Dockerfile", ROOT));

/** The repository paths `COPY` puts into the image: files, and folders ending in `/`. */
function copied(): string[] {
  return [...DOCKERFILE.matchAll(/^COPY (.+) \S+$/gm)].flatMap((match) => match[1]!.split(/\s+/));
}

/** Every local module `entry` may load, through static imports and `import()` alike. */
async function localModules(entry: string): Promise<string[]> {
  const { stdout, success } = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: ROOT,
  }).output();
  assert.ok(success, `deno info ${entry} failed`);
  const { modules } = JSON.parse(new TextDecoder().decode(stdout)) as {
    modules: { specifier: string }[];
  };
  return modules.map((module) => module.specifier)
    .filter((url) => url.startsWith(ROOT.href))
    .map((url) => url.slice(ROOT.href.length));
}

Deno.test("the Dockerfile copies every module worker.ts can load", async () => {
  const paths = copied();
  const missing = (await localModules("worker.ts")).filter((file) =>
    !paths.some((path) => path.endsWith("/") ? file.startsWith(path) : file === path)
  );
  assert.deepEqual(missing, [], `not copied into the image:\n${missing.join("\n")}`);
});

Deno.test("the Dockerfile runs worker.ts with exactly its shebang's flags", () => {
  const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(DOCKERFILE)?.[1];
  assert.ok(entrypoint, "an exec-form ENTRYPOINT");
  const args = JSON.parse(entrypoint) as string[];
  const run = args.indexOf("run");
  assert.deepEqual(args.slice(run + 1), [...scriptPermissions("worker.ts"), "worker.ts"]);
});
