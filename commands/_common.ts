/**
 * What the `queue.ts` subcommands share: the broker and queue flags turned into settings, and a
 * connection for the length of one command.
 *
 * @module
 */

import type { RecoveringChannelModel } from "../lib/amqp.ts";
import { connect, readCaFile } from "../lib/broker/connection.ts";
import {
  badInput,
  brokerUrlFromFlags,
  type ParsedFlags,
  parseInteger,
  taskQueueFromFlags,
} from "../lib/cli/flags.ts";
import type { TaskQueue } from "../lib/topology/task_queue.ts";

/** What every subcommand needs to reach the broker and the queue. */
export interface Common {
  url: string;
  queue: TaskQueue;
  heartbeat: number;
  ca: string | undefined;
}

export function common(flags: ParsedFlags): Common {
  const { values } = flags;
  const url = brokerUrlFromFlags(flags);
  return {
    url,
    queue: taskQueueFromFlags(values),
    heartbeat: parseInteger("heartbeat", values.heartbeat, { min: 0, max: 3600 }),
    ca: typeof values.ca === "string" ? badInput(() => readCaFile(values.ca as string)) : undefined,
  };
}

export function limitOf(values: ParsedFlags["values"]): number {
  return values.limit === undefined ? Infinity : parseInteger("limit", values.limit, { min: 1 });
}

export async function withConnection(
  config: Common,
  work: (connection: RecoveringChannelModel) => Promise<number>,
): Promise<number> {
  const connection = await connect(config.url, {
    heartbeat: config.heartbeat,
    ...(config.ca === undefined ? {} : { ca: config.ca }),
  });
  try {
    return await work(connection);
  } finally {
    await connection.close().catch(() => {});
  }
}
