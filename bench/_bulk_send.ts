/**
 * Measurement 1, bulk send: `new_task.ts --stdin` against the plain pipelined-confirm sender,
 * each a whole process sending the same tasks from stdin to a fresh queue.
 *
 * @module
 */

import { Deadline } from "./_deadline.ts";
import { taskLines } from "./_fill.ts";
import { runScript } from "./_process.ts";
import { median } from "./_stats.ts";
import type { BenchConfig, Step, StepContext } from "./_step.ts";
import { benchQueue } from "./_broker.ts";

/** The bulk send measurement for `config`. */
export function bulkSendStep(config: BenchConfig): Step {
  const { tasks, window, rounds } = config;
  const count = tasks.toLocaleString("en-US");
  return {
    title: "bulk send",
    method: `**Bulk send.** ${count} tasks, one a line on stdin, sent by a whole ` +
      `process to a fresh durable queue: \`bench/baseline_send.ts\` (plain amqplib: persistent, ` +
      `mandatory messages on a confirm channel, as ours must be, at most ${window} unconfirmed, waiting on "drain") against ` +
      `\`new_task.ts --stdin --window ${window}\`, run with its shebang's permissions. Tasks per ` +
      `second over the process's wall time, start-up included; the median of ${rounds} ` +
      `alternating rounds. The queue must hold every task afterwards.`,
    rows: [{
      name: `Bulk send, ${count} tasks`,
      unit: "tasks/s",
      target: { ratioAtLeast: 0.9 },
    }],
    async run(context) {
      const input = taskLines(tasks);
      const plain: number[] = [];
      const ours: number[] = [];
      const plainArgs = (queue: string) => [queue, `${window}`];
      const ourArgs = (queue: string) => ["--stdin", "--queue", queue, "--window", `${window}`];
      const sendPlain = async () =>
        plain.push(await sendOnce(context, "bench/baseline_send.ts", plainArgs, input));
      const sendOurs = async () =>
        ours.push(await sendOnce(context, "new_task.ts", ourArgs, input));
      for (let round = 0; round < rounds; round++) {
        // Alternate who goes first, so that neither always meets a broker busy with the other.
        const order = round % 2 === 0 ? [sendPlain, sendOurs] : [sendOurs, sendPlain];
        for (const send of order) await send();
      }
      return [{ plain: median(plain), ours: median(ours) }];
    },
  };
}

/** Runs one sender on a fresh queue; resolves with its tasks per second. */
async function sendOnce(
  { url, broker, config, signal }: StepContext,
  script: string,
  args: (queue: string) => string[],
  input: Uint8Array,
): Promise<number> {
  const queue = benchQueue("send");
  await broker.declare(queue);
  try {
    const deadline = new Deadline(30_000 + config.tasks, signal);
    const ms = await runScript(script, args(queue), { url, stdin: input, deadline });
    const stored = await broker.ready(queue);
    if (stored !== config.tasks) {
      throw new Error(`${script} left ${stored} tasks in the queue, not ${config.tasks}`);
    }
    return config.tasks / (ms / 1000);
  } finally {
    await broker.delete(queue);
  }
}
