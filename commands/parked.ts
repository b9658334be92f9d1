/**
 * `queue.ts dead`, `requeue` and `purge`: list, move back or delete the tasks parked in
 * `<queue>.dead`.
 *
 * @module
 */

import { EXIT, runCommand } from "../lib/cli/cli.ts";
import { UsageError } from "../lib/broker/errors.ts";
import {
  ALLOW_LOSSY_FLAG,
  CA_FLAG,
  type CommandSpec,
  HEARTBEAT_FLAG,
  HELP_FLAG,
  QUEUE_FLAG,
  QUEUE_TYPE_FLAG,
  URL_FILE_FLAG,
  URL_FLAG,
} from "../lib/cli/flags.ts";
import { countParked, listParked, purgeParked, requeueParked } from "../lib/operate/parked.ts";
import { escapeText, formatParkedJson, formatParkedLine } from "../lib/observe/parked_format.ts";
import { confirm } from "../lib/cli/prompt.ts";
import { common, limitOf, withConnection } from "./_common.ts";

/** `queue.ts dead`: list parked tasks. */
export const DEAD_COMMAND: CommandSpec = {
  usage: "deno task dead [OPTIONS]",
  summary: "List the tasks parked in <queue>.dead, oldest first, without removing them.",
  flags: [
    URL_FLAG,
    URL_FILE_FLAG,
    QUEUE_FLAG,
    {
      name: "limit",
      kind: "string",
      valueName: "N",
      default: "100",
      description: "List at most N tasks, the oldest.",
    },
    {
      name: "json",
      kind: "boolean",
      description: "Print one JSON object per task and line; the count goes to stderr.",
    },
    HEARTBEAT_FLAG,
    CA_FLAG,
    HELP_FLAG,
  ],
};

/** `queue.ts requeue`: move parked tasks back to the task queue. */
export const REQUEUE_COMMAND: CommandSpec = {
  usage: "deno task requeue [OPTIONS]",
  summary: "Move the tasks parked in <queue>.dead back to the task queue, with all their tries.",
  flags: [
    URL_FLAG,
    URL_FILE_FLAG,
    QUEUE_FLAG,
    QUEUE_TYPE_FLAG,
    ALLOW_LOSSY_FLAG,
    {
      name: "limit",
      kind: "string",
      valueName: "N",
      description: "Move at most N tasks, the oldest (all of them when absent).",
    },
    HEARTBEAT_FLAG,
    CA_FLAG,
    HELP_FLAG,
  ],
};

/** `queue.ts purge`: delete parked tasks. */
export const PURGE_COMMAND: CommandSpec = {
  usage: "deno task purge --dead [OPTIONS]",
  summary: "Delete the tasks parked in <queue>.dead, after asking on the terminal.",
  flags: [
    URL_FLAG,
    URL_FILE_FLAG,
    QUEUE_FLAG,
    {
      name: "dead",
      kind: "boolean",
      description: 'Required: purge "<queue>.dead". The task queue itself is never purged.',
    },
    {
      name: "yes",
      kind: "boolean",
      description: "Delete without asking (needed when stdin is not a terminal).",
    },
    HEARTBEAT_FLAG,
    CA_FLAG,
    HELP_FLAG,
  ],
};

function parked(count: number): string {
  return `${count} parked task${count === 1 ? "" : "s"}`;
}

/** Runs `queue.ts dead` with its arguments. */
export function dead(args: string[]): Promise<number> {
  return runCommand(DEAD_COMMAND, args, {
    configure: (flags) => ({
      ...common(flags),
      limit: limitOf(flags.values),
      json: flags.values.json === true,
    }),
    run: (config) =>
      withConnection(config, async (connection) => {
        const { deadQueue, total, tasks } = await listParked(connection, config.queue, {
          limit: config.limit,
        });
        for (const task of tasks) {
          console.log(config.json ? formatParkedJson(task) : formatParkedLine(task));
        }
        const summary = total === 0
          ? `No parked tasks in "${deadQueue}"`
          : tasks.length === total
          ? `${parked(total)} in "${deadQueue}"`
          : `Showing ${tasks.length} of ${parked(total)} in "${deadQueue}" (--limit to see more)`;
        // With --json, stdout is JSON lines only.
        if (config.json) console.error(summary);
        else console.log(summary);
        return EXIT.ok;
      }),
  });
}

/** Runs `queue.ts requeue` with its arguments. */
export function requeue(args: string[]): Promise<number> {
  return runCommand(REQUEUE_COMMAND, args, {
    configure: (flags) => ({
      ...common(flags),
      limit: limitOf(flags.values),
    }),
    run: (config) =>
      withConnection(config, async (connection) => {
        const { deadQueue, total, requeued } = await requeueParked(connection, config.queue, {
          limit: config.limit,
          onWarning: (line) => console.error(line),
          onRequeued: (task) => {
            const id = task.id === undefined ? "(no id)" : escapeText(task.id);
            const reason = task.reason === undefined ? "" : `: "${escapeText(task.reason)}"`;
            const attempts = `${task.attempts} attempt${task.attempts === 1 ? "" : "s"}`;
            console.log(`Requeued ${id} (parked after ${attempts}${reason})`);
          },
        });
        if (total === 0) console.log(`No parked tasks in "${deadQueue}"`);
        else {
          const left = total - requeued;
          console.log(
            `Requeued ${parked(requeued)} from "${deadQueue}" to "${config.queue}"${
              left > 0 ? `; ${left} still parked` : ""
            }`,
          );
        }
        return EXIT.ok;
      }),
  });
}

/** Runs `queue.ts purge` with its arguments. */
export function purge(args: string[]): Promise<number> {
  return runCommand(PURGE_COMMAND, args, {
    configure: (flags) => {
      const config = common(flags);
      if (flags.values.dead !== true) {
        throw new UsageError(
          `The purge command deletes parked tasks only: pass --dead to purge "${config.queue.deadQueue}" (to empty the task queue itself: rabbitmqctl purge_queue ${config.queue})`,
        );
      }
      return { ...config, yes: flags.values.yes === true };
    },
    async run(config) {
      const deadQueue = config.queue.deadQueue;
      // Decided before connecting, so a cron job without --yes fails every time, not only
      // on the day there is something to delete.
      if (!config.yes && !Deno.stdin.isTerminal()) {
        console.error(
          `Refusing to purge "${deadQueue}" without confirmation: stdin is not a terminal (pass --yes to delete without asking)`,
        );
        return EXIT.usage;
      }
      return await withConnection(config, async (connection) => {
        const count = await countParked(connection, config.queue) ?? 0;
        if (count === 0) {
          console.log(`No parked tasks in "${deadQueue}"`);
          return EXIT.ok;
        }
        if (!config.yes && !await confirm(`Delete ${parked(count)} from "${deadQueue}"? [y/N] `)) {
          console.log("Nothing deleted");
          return EXIT.ok;
        }
        const deleted = await purgeParked(connection, config.queue);
        console.log(`Deleted ${parked(deleted)} from "${deadQueue}"`);
        return EXIT.ok;
      });
    },
  });
}
