/**
 * Measurement 4, end-to-end latency: from the moment a task is published to the moment our worker
 * starts it, at a steady moderate rate.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { benchQueue } from "./_broker.ts";
import { Deadline } from "./_deadline.ts";
import { percentile } from "./_stats.ts";
import type { BenchConfig, Step } from "./_step.ts";
import { WorkerUnderTest } from "./_worker.ts";

const RECEIVED = /^ \[x\] Received 'e2e-(\d+)'$/;

/** The end-to-end latency measurement for `config`. */
export function latencyStep(config: BenchConfig): Step {
  const { latencyRate: rate, latencySeconds: seconds } = config;
  const label = `${rate} tasks/s for ${seconds} s`;
  const measured = (rate * seconds).toLocaleString("en-US");
  return {
    title: "end-to-end latency",
    method: `**End-to-end latency.** The bench publishes persistent tasks on a confirm channel ` +
      `of its own at ${rate} tasks/s, each body carrying its number, to \`worker.ts --dot-ms 0\` ` +
      `(its defaults otherwise: prefetch 1, concurrency 1). A task's latency runs from just ` +
      `before the bench hands it to amqplib to the moment the bench reads the worker's ` +
      `\`[x] Received\` line for it, which the worker prints as it starts the task; both times ` +
      `come from the bench's own monotonic clock, so no clocks need to agree. The first second ` +
      `is warm-up and not counted; then ${seconds} s, ${measured} tasks, are.`,
    rows: [
      { name: `End-to-end latency p50, ${label}`, unit: "ms" },
      { name: `End-to-end latency p99, ${label}`, unit: "ms" },
    ],
    async run({ url, broker, signal }) {
      const warmUp = rate;
      const total = warmUp + rate * seconds;
      const sentAt = new Float64Array(total).fill(NaN);
      const latencies: number[] = [];
      let received = 0;
      const all = Promise.withResolvers<void>();
      const queue = benchQueue("latency");
      await broker.declare(queue);
      try {
        const deadline = new Deadline(30_000 + (total / rate) * 2000, signal);
        await using worker = await WorkerUnderTest.start(queue, ["--dot-ms", "0"], {
          url,
          deadline,
          onLine(line, at) {
            const match = RECEIVED.exec(line);
            if (!match) return;
            const index = Number(match[1]);
            if (index >= warmUp) latencies.push(at - sentAt[index]!);
            if (++received === total) all.resolve();
          },
        });
        const channel = await broker.confirmChannel();
        try {
          const start = performance.now();
          for (let i = 0; i < total; i++) {
            const due = start + (i * 1000) / rate;
            const wait = due - performance.now();
            if (wait > 0) await deadline.sleep(wait);
            sentAt[i] = performance.now();
            channel.sendToQueue(queue, Buffer.from(`e2e-${i}`), {
              persistent: true,
              messageId: crypto.randomUUID(),
            });
          }
          await worker.until(channel.waitForConfirms(), "the broker's confirms");
        } finally {
          await channel.close().catch(() => {});
        }
        await worker.until(all.promise, `worker.ts to start all ${total} tasks`);
        await worker.stop();
      } finally {
        await broker.delete(queue);
      }
      return [{ ours: percentile(latencies, 50) }, { ours: percentile(latencies, 99) }];
    },
  };
}
