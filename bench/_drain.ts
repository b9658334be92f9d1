/**
 * Measurement 2, drain: our worker against a plain amqplib consume-and-ack loop, each emptying a
 * queue filled beforehand with the same no-op tasks, at several prefetch counts.
 *
 * @module
 */

import { benchQueue } from "./_broker.ts";
import { LineCount } from "./_count.ts";
import { Deadline } from "./_deadline.ts";
import { fillQueue } from "./_fill.ts";
import { startScript, succeed } from "./_process.ts";
import { WorkerUnderTest } from "./_worker.ts";
import { median } from "./_stats.ts";
import type { BenchConfig, Figures, Step, StepContext } from "./_step.ts";

/** The module `worker.ts --handler` runs in the handler row: it returns at once. */
const NOOP_HANDLER = "bench/noop_handler.ts";

/**
 * The drain measurement for `config`: one row per prefetch; at the last prefetch, rows for
 * `--handler` with a no-op module and for `--exec true`; and the worker with its per-task lines.
 */
export function drainStep(config: BenchConfig): Step {
  const { tasks, execTasks, prefetches, rounds } = config;
  const top = prefetches.at(-1)!;
  const count = (n: number) => n.toLocaleString("en-US");
  return {
    title: "drain",
    method: `**Drain.** A fresh durable queue is filled with ${count(tasks)} no-op ` +
      `tasks (no dots), then emptied by one whole process: \`bench/baseline_consume.ts\` (plain ` +
      `amqplib: prefetch P, ack each message as it arrives, prints nothing per message, exits ` +
      `after the last) against \`worker.ts --prefetch P --concurrency P --dot-ms 0 --quiet ` +
      `--max-tasks N\` (no line per task; it stops by itself after the N tasks, as on SIGTERM). ` +
      `Timed from the consumer starting (the first message or the consumer's confirmation: the ` +
      `worker's \`[*] Waiting\` line) to the process's exit, which for both comes after the last ` +
      `ack and closing the connection, so start-up is not counted; the median of ${rounds} ` +
      `alternating rounds. The queue must be empty afterwards. At prefetch ${top}, two more ` +
      `workers in the same rounds, against the same plain figure: \`--handler ${NOOP_HANDLER}\` ` +
      `instead of the dots, a module whose default export returns at once, so that the row is ` +
      `the worker's own cost per task (the task, its events, the ack); and \`--exec true\`, one ` +
      `\`sh -c true\` process per task, on ${count(execTasks)} tasks as it is far slower, ` +
      `against \`bench/baseline_consume.ts ... --exec true\` on as many tasks in the same ` +
      `rounds: the plain loop runs each message's command as the worker must, in the plainest ` +
      `way (\`setsid sh -c 'unset AMQP_URL; true'\`: a session of its own, no broker address in ` +
      `its environment, the body on stdin, its output read as it comes and dropped, acked when ` +
      `it exits 0), so the row is the worker's cost around a process per task. The last row is the worker as it runs by default, with the tutorial's two lines ` +
      `per task (\` [x] Received\`, \` [x] Done\`) read by the bench through a pipe, timed to the ` +
      `last \` [x] Done\` line, against the same silent plain loop: the price of those lines.`,
    rows: [
      ...prefetches.map((prefetch) => ({
        name: `Drain, prefetch ${prefetch}, ${count(tasks)} tasks`,
        unit: "tasks/s" as const,
        target: { ratioAtLeast: 0.9 },
      })),
      {
        name: `Drain, prefetch ${top}, ${count(tasks)} tasks, --handler no-op module`,
        unit: "tasks/s",
        target: { ratioAtLeast: 0.9 },
      },
      {
        name: `Drain, prefetch ${top}, ${count(execTasks)} tasks, --exec true vs a plain exec loop`,
        unit: "tasks/s",
        target: { ratioAtLeast: 0.9 },
      },
      {
        name: `Drain, prefetch ${prefetches[0]}, ${count(tasks)} tasks, with per-task lines`,
        unit: "tasks/s",
      },
    ],
    async run(context) {
      const figures: Figures[] = [];
      let extra: Figures[] = [];
      let printing: Figures | undefined;
      for (const prefetch of prefetches) {
        const plain: number[] = [];
        const ours: number[] = [];
        const loud: number[] = [];
        const module: number[] = [];
        const command: number[] = [];
        const plainCommand: number[] = [];
        const side = (drain: Drainer, into: number[], n = tasks) => () =>
          drainOnce(context, prefetch, n, drain).then((x) => into.push(x));
        for (let round = 0; round < rounds; round++) {
          const sides = [side(drainPlain, plain), side(drainWorker(["--dot-ms", "0"]), ours)];
          if (printing === undefined) sides.push(side(drainPrinting, loud));
          if (prefetch === top) {
            sides.push(side(drainWorker(["--handler", NOOP_HANDLER]), module));
            sides.push(side(drainWorker(["--exec", "true"]), command, execTasks));
            sides.push(side(drainPlainExec("true"), plainCommand, execTasks));
          }
          // Alternating which goes first, so that a drift of the machine favours neither.
          for (const run of round % 2 === 0 ? sides : sides.toReversed()) await run();
        }
        figures.push({ plain: median(plain), ours: median(ours) });
        printing ??= { plain: median(plain), ours: median(loud) };
        if (prefetch === top) {
          extra = [
            { plain: median(plain), ours: median(module) },
            { plain: median(plainCommand), ours: median(command) },
          ];
        }
      }
      return [...figures, ...extra, printing!];
    },
  };
}

/** Empties `queue` of `tasks`; resolves with the milliseconds from consuming to the last ack. */
type Drainer = (
  context: StepContext,
  queue: string,
  prefetch: number,
  tasks: number,
  deadline: Deadline,
) => Promise<number>;

/** Fills a fresh queue and has `drain` empty it; resolves with tasks per second. */
async function drainOnce(
  context: StepContext,
  prefetch: number,
  tasks: number,
  drain: Drainer,
): Promise<number> {
  const { url, broker, signal } = context;
  const queue = benchQueue(`drain${prefetch}`);
  await broker.declare(queue);
  try {
    await fillQueue(queue, tasks, { url, deadline: new Deadline(30_000 + tasks, signal) });
    // Prefetch 1 is a round trip per task: allow it 200 tasks/s at the least.
    const deadline = new Deadline(30_000 + tasks * 5, signal);
    const ms = await drain(context, queue, prefetch, tasks, deadline);
    const left = await broker.ready(queue);
    if (left !== 0) throw new Error(`${left} tasks were left in the queue`);
    return tasks / (ms / 1000);
  } finally {
    await broker.delete(queue);
  }
}

const drainPlain: Drainer = (context, queue, prefetch, tasks, deadline) =>
  drainBaseline(context, [queue, String(prefetch), String(tasks)], deadline);

/** The plain loop, running `command` for each message as `worker.ts --exec` does. */
function drainPlainExec(command: string): Drainer {
  return (context, queue, prefetch, tasks, deadline) =>
    drainBaseline(
      context,
      [queue, String(prefetch), String(tasks), "--exec", command],
      deadline,
    );
}

async function drainBaseline(
  { url }: StepContext,
  args: string[],
  deadline: Deadline,
): Promise<number> {
  let started = NaN;
  await using consumer = await startScript("bench/baseline_consume.ts", args, {
    url,
    onLine: (line, at) => line === "consuming" && (started = at),
  });
  await succeed(consumer, deadline);
  if (Number.isNaN(started)) {
    throw new Error("bench/baseline_consume.ts did not say when it started consuming");
  }
  return consumer.exitedAt - started;
}

/** `worker.ts` with `work` (the flags that choose its handler), silent, stopping after the tasks. */
function drainWorker(work: readonly string[]): Drainer {
  return async ({ url }, queue, prefetch, tasks, deadline) => {
    await using worker = await WorkerUnderTest.start(
      queue,
      [
        ...["--prefetch", String(prefetch), "--concurrency", String(prefetch), ...work],
        ...["--quiet", "--max-tasks", String(tasks)],
      ],
      { url, deadline, onLine: () => {} },
    );
    await succeed(worker.process, deadline);
    return worker.process.exitedAt - worker.consumingAt;
  };
}

/** The worker as it runs by default: two lines per task, read through the pipe. */
const drainPrinting: Drainer = async ({ url }, queue, prefetch, tasks, deadline) => {
  const done = new LineCount();
  await using worker = await WorkerUnderTest.start(
    queue,
    ["--prefetch", String(prefetch), "--concurrency", String(prefetch), "--dot-ms", "0"],
    { url, deadline, onLine: (line, at) => line === " [x] Done" && done.add(at) },
  );
  const ended = await worker.until(
    done.reached(tasks, deadline, "worker.ts to finish the tasks"),
    "worker.ts to finish the tasks",
  );
  await worker.stop();
  return ended - worker.consumingAt;
};
