#!/usr/bin/env -S deno run --allow-net --allow-env=AMQP_URL --allow-read --allow-write --allow-run=deno,git,ps --allow-sys=cpus,systemMemoryInfo,loadavg
/**
 * The benchmark: our producer and worker side by side with plain amqplib programs doing the same
 * work, on the same broker, in one run. It reports; it does not fail on a missed target.
 *
 * ```sh
 * deno task bench                      # the full run (~2 minutes on 2 cores), writes bench/RESULTS.md
 * deno task bench --quick              # a short run, for a quick look
 * ./bench/bench.ts --quick --out /tmp/results.md   # the task itself may write only bench/RESULTS.md
 * ```
 *
 * Measured, each on a fresh queue of its own that is deleted afterwards:
 * 1. bulk send: `new_task.ts --stdin` against `bench/baseline_send.ts`, tasks/s;
 * 2. drain: `worker.ts` against `bench/baseline_consume.ts` at prefetch 1, 10 and 100, tasks/s,
 *    and at prefetch 100 also `worker.ts --handler bench/noop_handler.ts`, and `--exec true`
 *    against the plain loop running the same command per message;
 * 3. one-shot send: `new_task.ts hello` against `bench/baseline_one_shot.ts`, wall time, and the
 *    floor under both (`bench/floor.ts`: Deno starting empty, with node:net, with amqplib) and a
 *    reference with our producer's duties (`bench/reference_one_shot.ts`);
 * 4. end-to-end latency from publish to the worker starting the task, p50 and p99;
 * 5. worker memory growth over many tasks.
 *
 * The table goes to stdout and, with the machine, the versions and the date, to the results file.
 * Progress goes to stderr. Every wait has a deadline, and the whole run a limit (10 minutes, 150 s
 * with --quick): a measurement that fails or times out shows as "error" in its rows, and the others
 * still run while there is time.
 *
 * Exit codes: 0 the table was written (whatever it says), 1 the broker could not be reached,
 * 2 bad arguments, 130 interrupted.
 *
 * @module
 */

import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Broker } from "./_broker.ts";
import { bulkSendStep } from "./_bulk_send.ts";
import { drainStep } from "./_drain.ts";
import { latencyStep } from "./_latency.ts";
import { describeMachine, loadAverage, type Machine } from "./_machine.ts";
import { memoryStep } from "./_memory.ts";
import { oneShotStep } from "./_one_shot.ts";
import { exit, ROOT, startScript } from "./_process.ts";
import { formatErrors, formatTable, type Row } from "./_report.ts";
import type { BenchConfig, Step } from "./_step.ts";
import { Deadline, TimeoutError } from "./_deadline.ts";
import { EXIT, runCommand } from "../lib/cli/cli.ts";
import { AmqpError, describeError, UsageError } from "../lib/broker/errors.ts";
import { type CommandSpec, HELP_FLAG, parseInteger, requireString } from "../lib/cli/flags.ts";
import { displayUrl, parseAmqpUrl } from "../lib/broker/url.ts";

/** The sizes of a full run. */
export const FULL: BenchConfig = {
  tasks: 20_000,
  execTasks: 1000,
  window: 20_000,
  prefetches: [1, 10, 100],
  rounds: 3,
  oneShotRuns: 40,
  latencyRate: 200,
  latencySeconds: 5,
  memoryWarmUp: 1000,
  memoryTasks: 100_000,
  timeLimit: 600_000,
};

/** The sizes of a `--quick` run. */
export const QUICK: BenchConfig = {
  ...FULL,
  tasks: 2000,
  execTasks: 200,
  rounds: 1,
  oneShotRuns: 10,
  latencySeconds: 2,
  memoryTasks: 10_000,
  timeLimit: 150_000,
};

/** The bench's command line. */
export const BENCH_COMMAND: CommandSpec = {
  usage: "deno task bench [OPTIONS]",
  summary:
    "Measure new_task.ts and worker.ts against plain amqplib on one broker; print the table and write it to the results file.",
  flags: [
    {
      name: "url",
      kind: "string",
      valueName: "URL",
      env: "AMQP_URL",
      default: "amqp://localhost:5672",
      description: "Broker address, amqp://user:pass@host:port/vhost.",
    },
    {
      name: "quick",
      kind: "boolean",
      description:
        "A short run: 2000 tasks, 10000 for the memory step, 1 round, 10 one-shot runs, 2 s of latency.",
    },
    {
      name: "tasks",
      kind: "string",
      valueName: "N",
      description: "Tasks per bulk send and per drain (default 20000; 2000 with --quick).",
    },
    {
      name: "memory-tasks",
      kind: "string",
      valueName: "N",
      description:
        "Tasks between the worker's two memory readings (default 100000; 10000 with --quick).",
    },
    {
      name: "rounds",
      kind: "string",
      valueName: "N",
      description:
        "Times each throughput is measured, median reported (default 3; 1 with --quick).",
    },
    {
      name: "one-shot-runs",
      kind: "string",
      valueName: "N",
      description: "Runs of each one-shot sender (default 40; 10 with --quick).",
    },
    {
      name: "out",
      kind: "string",
      valueName: "PATH",
      description: "Where to write the results file (default: RESULTS.md beside this script).",
    },
    HELP_FLAG,
  ],
};

interface BenchOptions {
  url: string;
  quick: boolean;
  config: BenchConfig;
  out: string;
}

/** Runs the bench with command-line `args`; resolves with the exit code. */
export function main(args: string[]): Promise<number> {
  return runCommand<BenchOptions>(BENCH_COMMAND, args, {
    configure({ values }) {
      const url = requireString("url", values.url);
      parseAmqpUrl(url);
      const quick = values.quick === true;
      const base = quick ? QUICK : FULL;
      const count = (name: string, fallback: number, min: number, max: number) =>
        values[name] === undefined ? fallback : parseInteger(name, values[name], { min, max });
      const out = values.out === undefined
        ? fileURLToPath(new URL("RESULTS.md", import.meta.url))
        : resolve(requireString("out", values.out));
      // Found out now, not after minutes of measuring.
      if (Deno.permissions.querySync({ name: "write", path: out }).state !== "granted") {
        throw new UsageError(
          `Cannot write the results to "${out}": no write permission there (deno task bench may write only bench/RESULTS.md; run ./bench/bench.ts --out PATH instead)`,
        );
      }
      return {
        url,
        quick,
        out,
        config: {
          ...base,
          tasks: count("tasks", base.tasks, 100, 1_000_000),
          memoryTasks: count("memory-tasks", base.memoryTasks, 100, 10_000_000),
          rounds: count("rounds", base.rounds, 1, 100),
          oneShotRuns: count("one-shot-runs", base.oneShotRuns, 2, 1000),
        },
      };
    },
    async run(options) {
      const broker = await openBroker(options.url);
      await using _broker = broker;
      const { timeLimit } = options.config;
      const stop = new AbortController();
      const interrupted = () => stop.abort(new Error("interrupted"));
      const timer = setTimeout(
        () => stop.abort(new TimeoutError(`the run's limit of ${timeLimit / 1000} s passed`)),
        timeLimit,
      );
      Deno.addSignalListener("SIGINT", interrupted);
      Deno.addSignalListener("SIGTERM", interrupted);
      try {
        const machine = await describeMachine(broker);
        const steps = [
          bulkSendStep(options.config),
          drainStep(options.config),
          oneShotStep(options.config),
          latencyStep(options.config),
          memoryStep(options.config),
        ];
        await warmUp(options.url, stop.signal);
        const rows: Row[] = [];
        for (const step of steps) {
          rows.push(...await measure(step, { ...options, broker, signal: stop.signal }));
        }
        const table = formatTable(rows);
        const errors = formatErrors(rows);
        console.log(errors === "" ? table : `${table}\n\n${errors}`);
        await writeResults(options, { ...machine, loadAtEnd: loadAverage() }, steps, rows);
        console.error(`bench: wrote ${options.out}`);
        const wasInterrupted = stop.signal.aborted && !(stop.signal.reason instanceof TimeoutError);
        return wasInterrupted ? EXIT.interrupted : EXIT.ok;
      } finally {
        clearTimeout(timer);
        Deno.removeSignalListener("SIGINT", interrupted);
        Deno.removeSignalListener("SIGTERM", interrupted);
      }
    },
  });
}

async function openBroker(url: string): Promise<Broker> {
  try {
    return await Broker.open(url);
  } catch (error) {
    throw new AmqpError(`Cannot connect to "${displayUrl(url)}": ${describeError(error)}`, {
      cause: error,
    });
  }
}

/** Runs one step; a failure becomes its rows' error, so the table always has every row. */
async function measure(
  step: Step,
  context: BenchOptions & { broker: Broker; signal: AbortSignal },
): Promise<Row[]> {
  if (context.signal.aborted) {
    const why = `not run: ${describeError(context.signal.reason)}`;
    return step.rows.map((row) => ({ ...row, error: why }));
  }
  const started = performance.now();
  console.error(`bench: ${step.title}...`);
  try {
    const figures = await step.run(context);
    console.error(
      `bench: ${step.title} took ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
    return step.rows.map((row, i) => ({ ...row, ...figures[i] }));
  } catch (error) {
    const why = describeError(error);
    console.error(`bench: ${step.title} failed: ${why}`);
    return step.rows.map((row) => ({ ...row, error: why }));
  } finally {
    await context.broker.deleteAll().catch(() => {});
  }
}

/**
 * Runs every script once, untimed, so that none of the timed runs pays for transpiling and
 * caching its modules.
 */
async function warmUp(url: string, signal: AbortSignal): Promise<void> {
  const scripts: Array<[string, string[]]> = [
    ["new_task.ts", ["--help"]],
    ["worker.ts", ["--help"]],
    ["bench/baseline_send.ts", []],
    ["bench/baseline_consume.ts", []],
    ["bench/baseline_one_shot.ts", []],
    ["bench/reference_one_shot.ts", []],
    ["bench/floor.ts", ["amqplib"]],
  ];
  await Promise.all(scripts.map(async ([script, args]) => {
    await using process = await startScript(script, args, { url });
    // A script that cannot even start fails its measurements, which say why.
    await exit(process, new Deadline(60_000, signal)).catch(() => {});
  }));
}

function count(value: number): string {
  return value.toLocaleString("en-US");
}

/** Writes the results file, then has `deno fmt` lay it out as the repository's check expects. */
async function writeResults(
  { out, url, quick, config }: BenchOptions,
  machine: Machine & { loadAtEnd: string },
  steps: readonly Step[],
  rows: readonly Row[],
): Promise<void> {
  const errors = formatErrors(rows);
  const run = quick ? "a quick run (`--quick`)" : "a full run";
  const text = [
    "# Benchmark results",
    "",
    `Written by \`deno task bench\` (\`bench/bench.ts\`), ${run}; run it again to replace this file.`,
    "",
    formatTable(rows),
    ...(errors === "" ? [] : ["", "Errors:", "", errors]),
    "",
    "## Where",
    "",
    `- Date: ${machine.date}`,
    `- CPU: ${machine.cpu}, ${machine.cores} cores; memory ${machine.memoryGiB.toFixed(1)} GiB`,
    `- Load average (1, 5, 15 min): ${machine.loadAverage} at the start, ${machine.loadAtEnd} ` +
    "at the end; anything else running on the machine shows here and skews the figures",
    `- Deno ${machine.deno}, amqplib ${machine.amqplib}, RabbitMQ ${machine.rabbitmq} at ` +
    displayUrl(url),
    `- Code: ${machine.commit}`,
    `- Sizes: ${count(config.tasks)} tasks per bulk send and drain, ${config.rounds} ` +
    `round${config.rounds === 1 ? "" : "s"}, ` +
    `${config.oneShotRuns} one-shot runs each, ${count(config.memoryTasks)} tasks for memory`,
    "",
    "## How each figure is measured",
    "",
    "Plain amqplib is the ceiling: small standalone programs in `bench/` (`baseline_*.ts`) that use " +
    "amqplib directly, with `noDelay` as our connection has it, and nothing else. Ours / plain " +
    "divides our figure by theirs: for tasks/s higher is better, for ms lower is better. A target " +
    "is met (pass) or not (miss); the bench reports, it does not fail.",
    "",
    ...steps.flatMap((step) => [step.method, ""]),
  ].join("\n");
  await Deno.writeTextFile(out, text);
  const { success } = await new Deno.Command("deno", {
    // The repository's settings, also for a file outside it (--out), so both look the same.
    args: ["fmt", "--quiet", "--config", fileURLToPath(new URL("deno.json", ROOT)), out],
    cwd: ROOT,
    stdout: "null",
    stderr: "null",
  }).output();
  if (!success) {
    console.error("bench: deno fmt could not lay out the results file; left as written");
  }
}

if (import.meta.main) Deno.exitCode = await main(Deno.args);
