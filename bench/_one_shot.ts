/**
 * Measurement 3, one-shot send latency: the wall time of a whole `new_task.ts hello` process
 * against a minimal plain amqplib sender, each run many times.
 *
 * @module
 */

import { benchQueue } from "./_broker.ts";
import { Deadline } from "./_deadline.ts";
import { runScript } from "./_process.ts";
import { median, percentile } from "./_stats.ts";
import type { BenchConfig, Step } from "./_step.ts";

/** The one-shot measurement for `config`. */
export function oneShotStep(config: BenchConfig): Step {
  const runs = config.oneShotRuns;
  return {
    title: "one-shot send",
    method: `**One-shot send.** The wall time, from spawn to exit, of \`new_task.ts --queue Q ` +
      `hello\` (its shebang's permissions) and of \`bench/baseline_one_shot.ts Q hello\` (plain ` +
      `amqplib: connect, declare, publish one persistent, mandatory message on a confirm channel, wait for ` +
      `the confirm, close), ${runs} runs each, alternating, to one durable queue. Deno's start-up ` +
      `is in both; lower is better, so here ours / plain under 1 is ours being faster.`,
    rows: [
      { name: `One-shot send, median of ${runs} runs`, unit: "ms" },
      { name: `One-shot send, p90 of ${runs} runs`, unit: "ms" },
    ],
    async run({ url, broker, signal }) {
      const queue = benchQueue("oneshot");
      await broker.declare(queue);
      try {
        const plain: number[] = [];
        const ours: number[] = [];
        const send = async (script: string, args: string[], into: number[]) => {
          const deadline = new Deadline(30_000, signal);
          into.push(await runScript(script, args, { url, deadline }));
        };
        for (let run = 0; run < runs; run++) {
          const sides = [
            () => send("bench/baseline_one_shot.ts", [queue, "hello"], plain),
            () => send("new_task.ts", ["--queue", queue, "hello"], ours),
          ];
          for (const side of run % 2 === 0 ? sides : sides.reverse()) await side();
        }
        const stored = await broker.ready(queue);
        if (stored !== 2 * runs) throw new Error(`${stored} tasks arrived, not ${2 * runs}`);
        return [
          { plain: median(plain), ours: median(ours) },
          { plain: percentile(plain, 90), ours: percentile(ours, 90) },
        ];
      } finally {
        await broker.delete(queue);
      }
    },
  };
}
