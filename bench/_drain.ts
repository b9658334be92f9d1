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
import { startScript } from "./_process.ts";
import { WorkerUnderTest } from "./_worker.ts";
import { median } from "./_stats.ts";
import type { BenchConfig, Figures, Step, StepContext } from "./_step.ts";

/** The drain measurement for `config`, one row per prefetch. */
export function drainStep(config: BenchConfig): Step {
  const { tasks, prefetches, rounds } = config;
  return {
    title: "drain",
    method:
      `**Drain.** A fresh durable queue is filled with ${tasks.toLocaleString("en-US")} no-op ` +
      `tasks (no dots), then emptied by one whole process: \`bench/baseline_consume.ts\` (plain ` +
      `amqplib: prefetch P, ack each message as it arrives, prints nothing per message, exits ` +
      `after the last) against \`worker.ts --prefetch P --concurrency P --dot-ms 0 --quiet ` +
      `--max-tasks N\` (no line per task; it stops by itself after the N tasks, as on SIGTERM). ` +
      `Timed from the consumer starting (the first message or the consumer's confirmation: the ` +
      `worker's \`[*] Waiting\` line) to the process's exit, which for both comes after the last ` +
      `ack and closing the connection, so start-up is not counted; the median of ${rounds} ` +
      `alternating rounds. The queue must be empty afterwards. The last row is the worker as it ` +
      `runs by default, with the tutorial's two lines per task (\` [x] Received\`, \` [x] Done\`) ` +
      `read by the bench through a pipe, timed to the last \` [x] Done\` line, against the same ` +
      `silent plain loop: the price of those lines.`,
    rows: [
      ...prefetches.map((prefetch) => ({
        name: `Drain, prefetch ${prefetch}, ${tasks.toLocaleString("en-US")} tasks`,
        unit: "tasks/s" as const,
        target: { ratioAtLeast: 0.9 },
      })),
      {
        name: `Drain, prefetch ${prefetches[0]}, ${
          tasks.toLocaleString("en-US")
        } tasks, with per-task lines`,
        unit: "tasks/s",
      },
    ],
    async run(context) {
      const figures: Figures[] = [];
      let printing: Figures | undefined;
      for (const prefetch of prefetches) {
        const plain: number[] = [];
        const ours: number[] = [];
        const loud: number[] = [];
        for (let round = 0; round < rounds; round++) {
          const sides = [
            () => drainOnce(context, prefetch, drainPlain).then((x) => plain.push(x)),
            () => drainOnce(context, prefetch, drainOurs).then((x) => ours.push(x)),
          ];
          if (printing === undefined) {
            sides.push(() => drainOnce(context, prefetch, drainPrinting).then((x) => loud.push(x)));
          }
          // Alternating which goes first, so that a drift of the machine favours neither.
          for (const side of round % 2 === 0 ? sides : sides.toReversed()) await side();
        }
        figures.push({ plain: median(plain), ours: median(ours) });
        printing ??= { plain: median(plain), ours: median(loud) };
      }
      return [...figures, printing!];
    },
  };
}

/** Empties `queue`; resolves with the milliseconds from consuming to the last ack. */
type Drainer = (
  context: StepContext,
  queue: string,
  prefetch: number,
  deadline: Deadline,
) => Promise<number>;

/** Fills a fresh queue and has `drain` empty it; resolves with tasks per second. */
async function drainOnce(context: StepContext, prefetch: number, drain: Drainer): Promise<number> {
  const { url, broker, config, signal } = context;
  const queue = benchQueue(`drain${prefetch}`);
  await broker.declare(queue);
  try {
    await fillQueue(queue, config.tasks, {
      url,
      deadline: new Deadline(30_000 + config.tasks, signal),
    });
    // Prefetch 1 is a round trip per task: allow it 200 tasks/s at the least.
    const deadline = new Deadline(30_000 + config.tasks * 5, signal);
    const ms = await drain(context, queue, prefetch, deadline);
    const left = await broker.ready(queue);
    if (left !== 0) throw new Error(`${left} tasks were left in the queue`);
    return config.tasks / (ms / 1000);
  } finally {
    await broker.delete(queue);
  }
}

const drainPlain: Drainer = async ({ url, config }, queue, prefetch, deadline) => {
  let started = NaN;
  await using consumer = startScript(
    "bench/baseline_consume.ts",
    [queue, String(prefetch), String(config.tasks)],
    { url, onLine: (line, at) => line === "consuming" && (started = at) },
  );
  await consumer.success(deadline);
  if (Number.isNaN(started)) {
    throw new Error("bench/baseline_consume.ts did not say when it started consuming");
  }
  return consumer.endedAt - started;
};

const drainOurs: Drainer = async ({ url, config }, queue, prefetch, deadline) => {
  await using worker = await WorkerUnderTest.start(
    queue,
    [
      ...["--prefetch", String(prefetch), "--concurrency", String(prefetch), "--dot-ms", "0"],
      ...["--quiet", "--max-tasks", String(config.tasks)],
    ],
    { url, deadline, onLine: () => {} },
  );
  await worker.process.success(deadline);
  return worker.process.endedAt - worker.consumingAt;
};

/** The worker as it runs by default: two lines per task, read through the pipe. */
const drainPrinting: Drainer = async ({ url, config }, queue, prefetch, deadline) => {
  const done = new LineCount();
  await using worker = await WorkerUnderTest.start(
    queue,
    ["--prefetch", String(prefetch), "--concurrency", String(prefetch), "--dot-ms", "0"],
    { url, deadline, onLine: (line, at) => line === " [x] Done" && done.add(at) },
  );
  const ended = await worker.until(
    done.reached(config.tasks, deadline, "worker.ts to finish the tasks"),
    "worker.ts to finish the tasks",
  );
  await worker.stop();
  return ended - worker.consumingAt;
};
