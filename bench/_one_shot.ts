/**
 * Measurement 3, one-shot send latency: the wall time of a whole `new_task.ts hello` process
 * against a minimal plain amqplib sender, each run many times, beside the floor under both: Deno
 * starting with nothing to do, with Node's `net` module, and with amqplib.
 *
 * @module
 */

import { benchQueue } from "./_broker.ts";
import { Deadline } from "./_deadline.ts";
import { runScript } from "./_process.ts";
import { median, percentile } from "./_stats.ts";
import type { BenchConfig, Step } from "./_step.ts";

/** The floor programs: `bench/floor.ts` with each argument, and what its row is called. */
const FLOORS = [
  ["empty", "deno run, an empty script"],
  ["net", "deno run, a script importing node:net"],
  ["amqplib", "deno run, a script importing amqplib"],
] as const;

/** The one-shot measurement for `config`. */
export function oneShotStep(config: BenchConfig): Step {
  const runs = config.oneShotRuns;
  return {
    title: "one-shot send",
    method: `**One-shot send.** The wall time, from spawn to exit, of \`new_task.ts --queue Q ` +
      `hello\` (its shebang's permissions) and of \`bench/baseline_one_shot.ts Q hello\` (plain ` +
      `amqplib: connect, declare, publish one persistent, mandatory message on a confirm channel, ` +
      `wait for the confirm, close), ${runs} runs each, alternating, to one durable queue. Deno's ` +
      `start-up is in both; lower is better, so here ours / plain under 1 is ours being faster. ` +
      `In the same rounds, the floor under both (\`bench/floor.ts\`): Deno starting an empty ` +
      `script, one that imports \`node:net\`, and one that imports amqplib, each timed from ` +
      `spawn to exit; every figure in those rows is the plain one, and the median of its runs. ` +
      `Also in the same rounds, a reference (\`bench/reference_one_shot.ts\`, no target): plain ` +
      `amqplib doing the duties every producer of ours has and the plain one-shot leaves out, ` +
      `the shortest way, in one module: \`new_task.ts\`'s sixteen flags parsed with ` +
      `\`node:util\` parseArgs, a task id and timestamp, a connection name, heartbeats and a ` +
      `30 s confirm timeout. Its row shows its median in the plain column and ours beside it, so ` +
      `that its ratio is what our code costs beyond those duties: loading its modules and ` +
      `running its checks.`,
    rows: [
      {
        name: `One-shot send, median of ${runs} runs`,
        unit: "ms",
        target: { ratioAtMost: 1.05 },
      },
      { name: `One-shot send, p90 of ${runs} runs`, unit: "ms" },
      ...FLOORS.map(([, what]) => ({ name: `One-shot floor: ${what}`, unit: "ms" as const })),
      {
        name: "One-shot reference, median: plain amqplib with our flags parsed, a task id, " +
          "heartbeats, a confirm timeout",
        unit: "ms",
      },
    ],
    async run({ url, broker, signal }) {
      const queue = benchQueue("oneshot");
      await broker.declare(queue);
      try {
        const plain: number[] = [];
        const ours: number[] = [];
        const reference: number[] = [];
        const floors = FLOORS.map((): number[] => []);
        const time = async (script: string, args: string[], into: number[]) => {
          const deadline = new Deadline(30_000, signal);
          into.push(await runScript(script, args, { url, deadline }));
        };
        for (let run = 0; run < runs; run++) {
          const sides = [
            () => time("bench/baseline_one_shot.ts", [queue, "hello"], plain),
            () => time("new_task.ts", ["--queue", queue, "hello"], ours),
            () => time("bench/reference_one_shot.ts", ["--queue", queue, "hello"], reference),
            ...FLOORS.map(([arg], i) => () => time("bench/floor.ts", [arg], floors[i]!)),
          ];
          for (const side of run % 2 === 0 ? sides : sides.reverse()) await side();
        }
        const stored = await broker.ready(queue);
        if (stored !== 3 * runs) throw new Error(`${stored} tasks arrived, not ${3 * runs}`);
        return [
          { plain: median(plain), ours: median(ours) },
          { plain: percentile(plain, 90), ours: percentile(ours, 90) },
          ...floors.map((times) => ({ plain: median(times) })),
          { plain: median(reference), ours: median(ours) },
        ];
      } finally {
        await broker.delete(queue);
      }
    },
  };
}
