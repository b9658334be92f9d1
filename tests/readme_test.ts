import assert from "node:assert/strict";
import { formatFlagTable } from "../lib/cli/help.ts";
import { DOCUMENTED_COMMANDS, QUOTED_FILES, quotedCode } from "../tools/readme.ts";
import { scriptPermissions } from "./_helpers.ts";

const README = Deno.readTextFileSync(new URL("../README.md", import.meta.url));
const DENO_JSON = JSON.parse(Deno.readTextFileSync(new URL("../deno.json", import.meta.url))) as {
  tasks: Record<string, string | { command: string }>;
};

/** A task's command line, whether written as a string or as `{ description, command }`. */
function taskCommand(name: string): string | undefined {
  const task = DENO_JSON.tasks[name];
  return typeof task === "object" ? task.command : task;
}

// deno fmt pads table cells; compare the cells, not the padding.
function cells(table: string): string[][] {
  return table.trim().split("\n")
    .filter((line) => !/^\|[\s|:-]+\|$/.test(line))
    .map((line) => line.split("|").slice(1, -1).map((cell) => cell.trim()));
}

Deno.test("README flag tables match the flags the scripts define (run `deno task readme`)", () => {
  for (const [name, command] of Object.entries(DOCUMENTED_COMMANDS)) {
    const block = new RegExp(`<!-- flags:${name} -->([\\s\\S]*?)<!-- /flags:${name} -->`).exec(
      README,
    );
    assert.ok(block?.[1], `README.md has a flag table for ${name}`);
    assert.deepEqual(cells(block[1]), cells(formatFlagTable(command.flags)), `flags of ${name}`);
  }
});

Deno.test("the README's library programs are the files in examples/, as they are (run `deno task readme`)", () => {
  assert.deepEqual(QUOTED_FILES, [
    "examples/producer.ts",
    "examples/worker.ts",
    "examples/handler.ts",
  ]);
  for (const path of QUOTED_FILES) {
    const quote = new RegExp(
      `<!-- code:${path} -->\\s*\`\`\`ts\n([\\s\\S]*?)\`\`\`\\s*<!-- /code:${path} -->`,
    );
    const block = quote.exec(README);
    assert.ok(block?.[1], `README.md quotes ${path}`);
    const code = quotedCode(Deno.readTextFileSync(new URL(`../${path}`, import.meta.url)));
    assert.ok(code.startsWith("import "), `${path}: only its header is left out`);
    assert.equal(block[1], code, path);
  }
});

Deno.test("the README states the permissions of the examples and of a --handler module", () => {
  const text = README.replace(/\s+/g, " ");
  for (const script of ["examples/producer.ts", "examples/worker.ts"]) {
    const permissions = `deno run ${scriptPermissions(script).join(" ")}`;
    assert.ok(text.includes(permissions), `${script}: ${permissions}`);
  }
  const handlers = /### A handler for `worker.ts`[\s\S]*?\n### /.exec(README)?.[0] ?? "";
  for (
    const permission of scriptPermissions("worker.ts").filter((flag) => flag.startsWith("--allow"))
  ) {
    assert.ok(handlers.includes(`\`${permission}`), `the --handler section names ${permission}`);
  }
});

Deno.test("every `deno task` the README mentions exists in deno.json", () => {
  const mentioned = new Set(
    [...README.matchAll(/deno task ([a-z:-]*[a-z])/g)].map((m) => m[1]!),
  );
  assert.ok(mentioned.size >= 4);
  for (const task of mentioned) assert.ok(task in DENO_JSON.tasks, `deno task ${task}`);
});

Deno.test("deno.json runs each entry script with exactly the permissions of its shebang", () => {
  for (
    const [task, script, ...args] of [
      ["worker", "worker.ts"],
      ["send", "new_task.ts"],
      ["demo", "demo.ts"],
      ["stats", "queue.ts", "stats"],
      ["dead", "queue.ts", "dead"],
      ["requeue", "queue.ts", "requeue"],
      ["purge", "queue.ts", "purge"],
      ["compile:worker", "tools/compile_worker.ts"],
    ]
  ) {
    const command = taskCommand(task!);
    assert.ok(command, `task ${task}`);
    assert.equal(
      command,
      `deno run ${scriptPermissions(script!).join(" ")} ${[script, ...args].join(" ")}`,
    );
  }
});
