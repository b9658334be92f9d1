import assert from "node:assert/strict";
import { BROKER_URL, scriptPermissions } from "./_helpers.ts";

const ROOT = new URL("../", import.meta.url);
const COMMITTED = new URL("bench/RESULTS.md", ROOT);

/** The rows of a `--quick` run, in order. */
const ROWS = [
  "Bulk send, 2,000 tasks (tasks/s)",
  "Bulk send, 2,000 tasks: plain with mandatory vs without (tasks/s)",
  "Drain, prefetch 1, 2,000 tasks (tasks/s)",
  "Drain, prefetch 10, 2,000 tasks (tasks/s)",
  "Drain, prefetch 100, 2,000 tasks (tasks/s)",
  "Drain, prefetch 100, 2,000 tasks, --handler no-op module (tasks/s)",
  "Drain, prefetch 100, 200 tasks, --exec true vs a plain exec loop (tasks/s)",
  "Drain, prefetch 1, 2,000 tasks, with per-task lines (tasks/s)",
  "One-shot send, median of 10 runs (ms)",
  "One-shot send, p90 of 10 runs (ms)",
  "One-shot floor: deno run, an empty script (ms)",
  "One-shot floor: deno run, a script importing node:net (ms)",
  "One-shot floor: deno run, a script importing amqplib (ms)",
  "One-shot reference, median: plain amqplib with our flags parsed, a task id, heartbeats, a confirm timeout (ms)",
  "End-to-end latency p50, 200 tasks/s for 2 s (ms)",
  "End-to-end latency p99, 200 tasks/s for 2 s (ms)",
  "Worker RSS after 1,000 tasks (MB)",
  "Worker RSS after 10,000 more (MB)",
  "Worker RSS growth over 10,000 tasks (MB)",
  "Worker RSS growth over 10,000 tasks, --handler no-op module (MB)",
];

/** The cells of the table's body rows in `text`, by measurement. */
function tableRows(text: string): Map<string, string[]> {
  const rows = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    if (!line.startsWith("| ") || /^\| (Measurement|-+) /.test(line)) continue;
    const cells = line.slice(2, -2).split(" | ").map((cell) => cell.trim());
    rows.set(cells[0]!, cells.slice(1));
  }
  return rows;
}

Deno.test("bench/bench.ts --quick prints a row for every measurement, writes them to --out, and exits 0", async () => {
  const out = await Deno.makeTempFile({ prefix: "bench_results_", suffix: ".md" });
  const committedBefore = await Deno.readTextFile(COMMITTED).catch(() => undefined);
  try {
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        ...scriptPermissions("bench/bench.ts"),
        "bench/bench.ts",
        "--quick",
        "--out",
        out,
      ],
      cwd: ROOT,
      env: { AMQP_URL: BROKER_URL, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(180_000),
    }).output();
    const printed = new TextDecoder().decode(stdout);
    const log = new TextDecoder().decode(stderr);
    assert.equal(code, 0, log);

    const rows = tableRows(printed);
    assert.deepEqual([...rows.keys()], ROWS, printed);
    for (const [name, cells] of rows) {
      assert.equal(cells.length, 5, `${name}: ${cells.join(" | ")}`);
      assert.match(cells.at(-1)!, /^(pass|miss|—)$/, `${name} measured: ${printed}\n${log}`);
    }

    const written = await Deno.readTextFile(out);
    assert.deepEqual(tableRows(written), rows, "the results file has the printed table");
    const facts = [
      /^- Date: \d{4}-\d\d-\d\d \d\d:\d\d UTC$/m,
      /^- CPU: (?!unknown).+, \d+ cores; memory \d+\.\d GiB$/m,
      /^- Load average \(1, 5, 15 min\): \d+\.\d\d \d+\.\d\d \d+\.\d\d at the start/m,
      /^- Deno \d+\.\d+\.\d+, amqplib \d+\.\d+\.\d+, RabbitMQ \d+\.\d+\.\d+/m,
      /^- Code: commit [0-9a-f]{7,}/m,
    ];
    for (const fact of facts) assert.match(written, fact);
    assert.equal(
      await Deno.readTextFile(COMMITTED).catch(() => undefined),
      committedBefore,
      "the committed bench/RESULTS.md is left alone",
    );
  } finally {
    await Deno.remove(out);
  }
});
