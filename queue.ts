#!/usr/bin/env -S deno run --allow-net --allow-env=AMQP_URL,AMQP_CA_FILE,TASK_QUEUE_TYPE,AMQP_MANAGEMENT_URL --allow-read
/**
 * Parked tasks: a task that failed on its last try is parked in `<queue>.dead`. This script lists
 * them without removing them, moves them back to the task queue for another round of tries, or
 * deletes them.
 *
 * ```sh
 * deno task dead                          # list the parked tasks of task_queue, oldest first
 * deno task dead --json                   # one JSON object per line, for jq and scripts
 * deno task requeue                       # move them all back to task_queue
 * deno task requeue --limit 10            # only the 10 oldest
 * deno task purge --dead                  # delete them, after asking on the terminal
 * deno task purge --dead --yes            # delete them without asking (cron, scripts)
 * ./queue.ts dead --queue reports         # the same for another queue
 * ```
 *
 * Exit codes: 0 done (or a purge declined at the prompt), 1 runtime failure (broker unreachable,
 * refused, a copy not confirmed), 2 bad arguments (an unknown subcommand or flag; `purge` without
 * `--dead`; `purge` without `--yes` when stdin is not a terminal).
 *
 * @module
 */

import { confirm } from "./lib/prompt.ts";
import { type QueueStats, queueStats } from "./lib/queue_stats.ts";
import { onShutdownSignal } from "./lib/shutdown.ts";
import { setTimeout as sleep } from "node:timers/promises";
import {
  connect,
  parseBrokerList,
  parseQueueType,
  readCaFile,
  type RecoveringChannelModel,
  validateQueueName,
} from "./lib/amqp.ts";
import { EXIT, runCommand } from "./lib/cli.ts";
import { deadQueueName } from "./lib/dead_letter.ts";
import { UsageError } from "./lib/errors.ts";
import {
  CA_FLAG,
  type CommandSpec,
  HEARTBEAT_FLAG,
  HELP_FLAG,
  type ParsedFlags,
  parseInteger,
  QUEUE_FLAG,
  QUEUE_TYPE_FLAG,
  requireString,
  URL_FLAG,
} from "./lib/flags.ts";
import {
  countParked,
  escapeText,
  formatParkedJson,
  formatParkedLine,
  listParked,
  purgeParked,
  requeueParked,
} from "./lib/parked.ts";

/** `queue.ts dead`: list parked tasks. */
export const DEAD_COMMAND: CommandSpec = {
  usage: "deno task dead [OPTIONS]",
  summary: "List the tasks parked in <queue>.dead, oldest first, without removing them.",
  flags: [
    URL_FLAG,
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
    QUEUE_FLAG,
    QUEUE_TYPE_FLAG,
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

/** `queue.ts stats`: how the queue is doing. */
export const STATS_COMMAND: CommandSpec = {
  usage: "deno task stats [OPTIONS]",
  summary:
    "Show ready, unacked and consumers for the task queue, its retry queues and its dead queue.",
  flags: [
    URL_FLAG,
    QUEUE_FLAG,
    {
      name: "management-url",
      kind: "string",
      valueName: "URL",
      env: "AMQP_MANAGEMENT_URL",
      default: "http://localhost:15672",
      description:
        "RabbitMQ's management API, for unacked counts and rates (same credentials as the broker URL unless given in it); none to skip it.",
    },
    {
      name: "json",
      kind: "boolean",
      description: "Print one JSON object (with --watch, one per line).",
    },
    {
      name: "watch",
      kind: "string",
      valueName: "SECONDS",
      description: "Print again every SECONDS until Ctrl+C.",
    },
    HEARTBEAT_FLAG,
    CA_FLAG,
    HELP_FLAG,
  ],
};

/** The usage line of the script as a whole. */
export const QUEUE_USAGE = "./queue.ts stats|dead|requeue|purge [OPTIONS]";

/** The subcommands, by name. */
export const SUBCOMMANDS: Readonly<Record<string, (args: string[]) => Promise<number>>> = {
  stats,
  dead,
  requeue,
  purge,
};

/** The `--help` text of the script as a whole. */
export function formatOverview(): string {
  const rows: Array<[string, CommandSpec]> = [
    ["stats", STATS_COMMAND],
    ["dead", DEAD_COMMAND],
    ["requeue", REQUEUE_COMMAND],
    ["purge", PURGE_COMMAND],
  ];
  return [
    "See how the task queue is doing; inspect, requeue or delete parked tasks (those a worker gave up on after their last try).",
    "",
    `Usage: ${QUEUE_USAGE}`,
    "   or: deno task stats|dead|requeue|purge [OPTIONS]",
    "",
    "Commands:",
    ...rows.map(([name, command]) => `  ${name.padEnd(8)} ${command.summary}`),
    "",
    'Run "./queue.ts COMMAND --help" for the options of a command.',
    "",
  ].join("\n");
}

/** Runs `queue.ts` with command-line `args`; resolves with the exit code. */
export async function main(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (name === "--help") {
    console.log(formatOverview());
    return EXIT.ok;
  }
  const run = name !== undefined && Object.hasOwn(SUBCOMMANDS, name)
    ? SUBCOMMANDS[name]
    : undefined;
  if (run === undefined) {
    const problem = name === undefined
      ? "No command given"
      : name.startsWith("-")
      ? `Expected a command before "${name}"`
      : `Unknown command "${name}"`;
    console.error(
      `${problem}: expected stats, dead, requeue or purge\nUsage: ${QUEUE_USAGE} (see --help)`,
    );
    return EXIT.usage;
  }
  return await run(rest);
}

/** What every subcommand needs to reach the broker and the queue. */
interface Common {
  url: string;
  queue: string;
  heartbeat: number;
  ca: string | undefined;
}

function common({ values }: ParsedFlags): Common {
  const url = requireString("url", values.url);
  parseBrokerList(url);
  const queue = requireString("queue", values.queue);
  validateQueueName(queue);
  validateQueueName(deadQueueName(queue));
  return {
    url,
    queue,
    heartbeat: parseInteger("heartbeat", values.heartbeat, { min: 0, max: 3600 }),
    ca: typeof values.ca === "string" ? readCaFile(values.ca) : undefined,
  };
}

function limitOf(values: ParsedFlags["values"]): number {
  return values.limit === undefined ? Infinity : parseInteger("limit", values.limit, { min: 1 });
}

async function withConnection(
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

function parked(count: number): string {
  return `${count} parked task${count === 1 ? "" : "s"}`;
}

function stats(args: string[]): Promise<number> {
  return runCommand(STATS_COMMAND, args, {
    configure: (flags) => {
      const management = requireString("management-url", flags.values["management-url"]);
      return {
        ...common(flags),
        managementUrl: management === "none" ? undefined : management,
        json: flags.values.json === true,
        watch: flags.values.watch === undefined
          ? undefined
          : parseInteger("watch", flags.values.watch, { min: 1, max: 86_400 }),
      };
    },
    run: (config) =>
      withConnection(config, async (connection) => {
        const broker = parseBrokerList(config.url)[0]!;
        const auth = {
          username: decodeURIComponent(broker.username) || "guest",
          password: broker.username === "" ? "guest" : decodeURIComponent(broker.password),
          vhost: broker.pathname.length > 1 ? decodeURIComponent(broker.pathname.slice(1)) : "/",
        };
        const stop = new AbortController();
        using _signals = onShutdownSignal({ onFirst: () => stop.abort(), onForced: () => {} });
        while (true) {
          const current = await queueStats(connection, config.queue, {
            ...(config.managementUrl === undefined ? {} : { managementUrl: config.managementUrl }),
            auth,
          });
          console.log(config.json ? JSON.stringify(statsJson(current)) : formatStats(current));
          if (config.watch === undefined || stop.signal.aborted) return EXIT.ok;
          await sleep(config.watch * 1000, undefined, { signal: stop.signal }).catch(() => {});
          if (stop.signal.aborted) return EXIT.ok;
        }
      }),
  });
}

/** The `stats --json` object. */
export function statsJson(stats: QueueStats): Record<string, unknown> {
  return {
    queue: stats.name,
    ready: stats.ready,
    unacked: stats.unacked,
    consumers: stats.consumers,
    retrying: stats.retrying,
    dead: stats.dead,
    retry_queues: stats.retryQueues.map(({ name, ready, unacked }) => ({ name, ready, unacked })),
    rates: stats.rates,
  };
}

/** The `stats` lines for people. */
export function formatStats(stats: QueueStats): string {
  const unacked = stats.unacked === null ? "unacked unknown" : `${stats.unacked} unacked`;
  const lines = [
    `Queue "${stats.name}": ${stats.ready} ready, ${unacked}, ${stats.consumers} consumer${
      stats.consumers === 1 ? "" : "s"
    }; ${stats.retrying} waiting to be retried; ${stats.dead} parked`,
  ];
  if (stats.rates) {
    const { publish, deliver, ack } = stats.rates;
    lines.push(`  per second: ${publish} published, ${deliver} delivered, ${ack} acked`);
  } else if (stats.managementError !== null) {
    lines.push(`  (no unacked counts or rates: ${stats.managementError})`);
  }
  return lines.join("\n");
}

function dead(args: string[]): Promise<number> {
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

function requeue(args: string[]): Promise<number> {
  return runCommand(REQUEUE_COMMAND, args, {
    configure: (flags) => ({
      ...common(flags),
      limit: limitOf(flags.values),
      queueType: parseQueueType(requireString("queue-type", flags.values["queue-type"])),
    }),
    run: (config) =>
      withConnection(config, async (connection) => {
        const { deadQueue, total, requeued } = await requeueParked(connection, config.queue, {
          limit: config.limit,
          queueType: config.queueType,
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

function purge(args: string[]): Promise<number> {
  return runCommand(PURGE_COMMAND, args, {
    configure: (flags) => {
      const config = common(flags);
      if (flags.values.dead !== true) {
        throw new UsageError(
          `The purge command deletes parked tasks only: pass --dead to purge "${
            deadQueueName(config.queue)
          }" (to empty the task queue itself: rabbitmqctl purge_queue ${config.queue})`,
        );
      }
      return { ...config, yes: flags.values.yes === true };
    },
    async run(config) {
      const deadQueue = deadQueueName(config.queue);
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

if (import.meta.main) Deno.exitCode = await main(Deno.args);
