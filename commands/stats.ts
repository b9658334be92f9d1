/**
 * `queue.ts stats`: how the task queue, its delay levels and its dead queue are doing.
 *
 * @module
 */

import { setTimeout as sleep } from "node:timers/promises";
import { parseBrokerList } from "../lib/broker/connection.ts";
import { EXIT, runCommand } from "../lib/cli/cli.ts";
import {
  badInput,
  CA_FLAG,
  type CommandSpec,
  HEARTBEAT_FLAG,
  HELP_FLAG,
  parseInteger,
  QUEUE_FLAG,
  requireString,
  URL_FILE_FLAG,
  URL_FLAG,
} from "../lib/cli/flags.ts";
import { formatSeconds } from "../lib/cli/duration.ts";
import { parseManagementUrl, type QueueStats, queueStats } from "../lib/operate/queue_stats.ts";
import { onShutdownSignal } from "../lib/cli/shutdown.ts";
import { common, withConnection } from "./_common.ts";

/** `queue.ts stats`: how the queue is doing. */
export const STATS_COMMAND: CommandSpec = {
  usage: "deno task stats [OPTIONS]",
  summary:
    "Show ready, unacked and consumers for the task queue, the tasks waiting for their time (delayed or to be retried) and the next one due, and the parked tasks.",
  flags: [
    URL_FLAG,
    URL_FILE_FLAG,
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

/** Runs `queue.ts stats` with its arguments. */
export function stats(args: string[]): Promise<number> {
  return runCommand(STATS_COMMAND, args, {
    configure: (flags) => {
      const management = requireString("management-url", flags.values["management-url"]);
      if (management !== "none") badInput(() => parseManagementUrl(management));
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
    waiting: stats.waiting,
    next_due: stats.nextDue && {
      at: stats.nextDue.at.toISOString(),
      exact: stats.nextDue.exact,
    },
    dead: stats.dead,
    delay_queues: stats.delayQueues.map(({ name, ready }) => ({ name, ready })),
    rates: stats.rates,
  };
}

/** A wait as people say it: `45.2 s`, `12 min`, `3 h 20 min`, `29 d 23 h`. */
export function formatWait(ms: number): string {
  if (ms < 60_000) return formatSeconds(ms);
  const minutes = Math.round(ms / 60_000);
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours} h ${minutes % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

/** The `stats` lines for people; `now` for the time to the next task due. */
export function formatStats(stats: QueueStats, now: number = Date.now()): string {
  const unacked = stats.unacked === null ? "unacked unknown" : `${stats.unacked} unacked`;
  const lines = [
    `Queue "${stats.name}": ${stats.ready} ready, ${unacked}, ${stats.consumers} consumer${
      stats.consumers === 1 ? "" : "s"
    }; ${stats.waiting} waiting for their time; ${stats.dead} parked`,
  ];
  if (stats.nextDue) {
    const { at, exact } = stats.nextDue;
    const wait = at.getTime() - now;
    const when = wait <= 0 ? "now" : `in ${formatWait(wait)}`;
    lines.push(
      exact
        ? `  next due ${at.toISOString()} (${when})`
        : `  next due by ${at.toISOString()} at the latest (${when})`,
    );
  }
  if (stats.rates) {
    const { publish, deliver, ack } = stats.rates;
    lines.push(`  per second: ${publish} published, ${deliver} delivered, ${ack} acked`);
  } else if (stats.managementError !== null) {
    lines.push(`  (no unacked counts or rates: ${stats.managementError})`);
  }
  return lines.join("\n");
}
