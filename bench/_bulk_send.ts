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
      `process to a fresh durable queue: \`bench/baseline_send.ts\` (the fastest plain amqplib ` +
      `sender that keeps the producer's guarantees: stdin read whole and split by a loop over ` +
      `its bytes, every line published in one synchronous loop, persistent and mandatory, on a ` +
      `confirm channel, then every confirm waited for; no window, no ids, no promise per task) ` +
      `against \`new_task.ts --stdin --window ${window}\`, run with its shebang's permissions. ` +
      `Tasks per second over the process's wall time, start-up included; the median of ${rounds} ` +
      `alternating rounds. The queue must hold every task afterwards. A second row runs the ` +
      `plain sender with and without \`mandatory\` (its \`--no-mandatory\`), to show what ` +
      `mandatory costs the broker.`,
    rows: [{
      name: `Bulk send, ${count} tasks`,
      unit: "tasks/s",
      target: { ratioAtLeast: 0.95 },
    }, {
      name: `Bulk send, ${count} tasks: plain with mandatory vs without`,
      unit: "tasks/s",
    }],
    async run(context) {
      const input = taskLines(tasks);
      const plain: number[] = [];
      const ours: number[] = [];
      const loose: number[] = [];
      const sendPlain = async () =>
        plain.push(await sendOnce(context, "bench/baseline_send.ts", (q) => [q], input));
      const sendLoose = async () =>
        loose.push(
          await sendOnce(context, "bench/baseline_send.ts", (q) => [q, "--no-mandatory"], input),
        );
      const ourArgs = (queue: string) => ["--stdin", "--queue", queue, "--window", `${window}`];
      const sendOurs = async () =>
        ours.push(await sendOnce(context, "new_task.ts", ourArgs, input));
      for (let round = 0; round < rounds; round++) {
        // Rotate who goes first, so that none always meets a broker busy with another.
        const order = [sendPlain, sendOurs, sendLoose];
        for (let i = 0; i < order.length; i++) await order[(i + round) % order.length]!();
      }
      return [
        { plain: median(plain), ours: median(ours) },
        { plain: median(loose), ours: median(plain) },
      ];
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
