#!/usr/bin/env -S deno run --allow-net --allow-env=AMQP_URL,AMQP_URL_FILE,AMQP_CA_FILE,TASK_QUEUE_TYPE,AMQP_MANAGEMENT_URL --allow-read
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

import { EXIT } from "./lib/cli/cli.ts";
import type { CommandSpec } from "./lib/cli/flags.ts";
import {
  dead,
  DEAD_COMMAND,
  purge,
  PURGE_COMMAND,
  requeue,
  REQUEUE_COMMAND,
} from "./commands/parked.ts";
import { stats, STATS_COMMAND } from "./commands/stats.ts";

export { DEAD_COMMAND, PURGE_COMMAND, REQUEUE_COMMAND, STATS_COMMAND };

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

if (import.meta.main) Deno.exitCode = await main(Deno.args);
