/**
 * Measurement 5, worker memory: how much the resident memory of one worker grows over many
 * tasks, after a warm-up.
 *
 * @module
 */

import { benchQueue } from "./_broker.ts";
import { LineCount } from "./_count.ts";
import { Deadline } from "./_deadline.ts";
import { fillQueue } from "./_fill.ts";
import type { BenchConfig, Step } from "./_step.ts";
import { WorkerUnderTest } from "./_worker.ts";

/** The prefetch and concurrency of the worker whose memory is measured. */
const PREFETCH = 10;

/** The memory measurement for `config`. */
export function memoryStep(config: BenchConfig): Step {
  const { memoryWarmUp: warmUp, memoryTasks: tasks } = config;
  const warm = warmUp.toLocaleString("en-US");
  const many = tasks.toLocaleString("en-US");
  return {
    title: "worker memory",
    method: `**Worker memory.** One \`worker.ts --prefetch ${PREFETCH} --concurrency ${PREFETCH} ` +
      `--dot-ms 0\` does ${warm} no-op tasks, then ${many} more, sent while it works by ` +
      `\`bench/baseline_send.ts\`. Its resident memory (VmRSS, as \`ps -o rss\` reports it from ` +
      `\`/proc/<pid>\`, in MB of 2^20 bytes) is read when the ${warm}th and the last ` +
      `\`[x] Done\` lines arrive; the growth is the difference. The last row does the same ` +
      `with \`--handler bench/noop_handler.ts\` instead of \`--dot-ms 0\`.`,
    rows: [
      { name: `Worker RSS after ${warm} tasks`, unit: "MB" },
      { name: `Worker RSS after ${many} more`, unit: "MB" },
      { name: `Worker RSS growth over ${many} tasks`, unit: "MB", target: { below: 20 } },
      {
        name: `Worker RSS growth over ${many} tasks, --handler no-op module`,
        unit: "MB",
        target: { below: 20 },
      },
    ],
    async run({ url, broker, signal }) {
      const measure = async (handler: string[]) => {
        const queue = benchQueue("memory");
        await broker.declare(queue);
        try {
          const deadline = new Deadline(60_000 + (warmUp + tasks) * 2, signal);
          await fillQueue(queue, warmUp, { url, deadline });
          const done = new LineCount();
          await using worker = await WorkerUnderTest.start(
            queue,
            ["--prefetch", String(PREFETCH), "--concurrency", String(PREFETCH), ...handler],
            { url, deadline, onLine: (line, at) => line === " [x] Done" && done.add(at) },
          );
          const doneWith = (count: number) =>
            worker.until(done.reached(count, deadline, "worker.ts to do the tasks"), "the tasks");
          await doneWith(warmUp);
          const before = await worker.rssMegabytes();
          await fillQueue(queue, tasks, { url, deadline });
          await doneWith(warmUp + tasks);
          const after = await worker.rssMegabytes();
          await worker.stop();
          return { before, after };
        } finally {
          await broker.delete(queue);
        }
      };
      const dots = await measure(["--dot-ms", "0"]);
      const module = await measure(["--handler", "bench/noop_handler.ts"]);
      return [
        { ours: dots.before },
        { ours: dots.after },
        { ours: dots.after - dots.before },
        { ours: module.after - module.before },
      ];
    },
  };
}
