/**
 * What the broker says about the task queue, each answer over a short connection of its own:
 * how many tasks wait and how many consumers take them.
 *
 * @module
 */

import { checkQueue, type QueueInfo } from "../lib/amqp.ts";
import { TaskQueue } from "../lib/topology/task_queue.ts";
import { connect } from "../lib/broker/connection.ts";
import { AmqpError } from "../lib/broker/errors.ts";

/** Options for {@linkcode countReady}. */
export interface CountReadyOptions {
  /**
   * PEM certificate(s) of the CA that signed the broker's certificate, for `amqps://`.
   * @default {undefined}
   */
  ca?: string | undefined;
}

/** Options for {@linkcode inspectTaskQueue}. */
export interface InspectTaskQueueOptions extends CountReadyOptions {
  /**
   * Called when the queue exists with other arguments and is used as it is.
   * @default {() => {}}
   */
  onWarning?: (message: string) => void;
}

/**
 * Declares the task queue at `url` as the workers do, so that it exists, and resolves with the
 * tasks ready in it and the consumers it has.
 *
 * @throws {AmqpError} when the broker cannot be reached or refuses the declaration.
 */
export async function inspectTaskQueue(
  url: string,
  queue: string,
  options: InspectTaskQueueOptions = {},
): Promise<QueueInfo> {
  const { ca, onWarning = () => {} } = options;
  const connection = await connect(url, ca === undefined ? {} : { ca });
  try {
    const { channel, info } = await new TaskQueue(queue).open(connection, { onWarning });
    await channel.close().catch(() => {});
    return info;
  } finally {
    await connection.close().catch(() => {});
  }
}

/**
 * The tasks ready in `queue` at `url`, from a passive declare: nothing is created.
 *
 * @throws {AmqpError} when the broker cannot be reached or the queue cannot be checked (it does
 * not exist, access refused).
 */
export async function countReady(
  url: string,
  queue: string,
  options: CountReadyOptions = {},
): Promise<number> {
  const { ca } = options;
  const connection = await connect(url, ca === undefined ? {} : { ca });
  try {
    const info = await checkQueue(connection, queue);
    if (!info) {
      throw new AmqpError(`Cannot check queue "${queue}": it does not exist`, { code: 404 });
    }
    return info.messageCount;
  } finally {
    await connection.close().catch(() => {});
  }
}
