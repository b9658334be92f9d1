/**
 * What the figures were measured on: the machine, the runtime, the client, the broker, the code.
 *
 * @module
 */

import { cpus as cpuInfo } from "node:os";
import type { Broker } from "./_broker.ts";
import { ROOT } from "./_process.ts";

/** The facts the results file records beside the table. */
export interface Machine {
  /** The CPU model. */
  cpu: string;
  /** Logical cores. */
  cores: number;
  /** Total memory in GiB. */
  memoryGiB: number;
  /** The 1, 5 and 15-minute load averages when the run started. */
  loadAverage: string;
  /** The version of the `deno` that runs the scripts. */
  deno: string;
  /** The amqplib version locked in deno.lock. */
  amqplib: string;
  /** The broker's version and platform, as it announced them. */
  rabbitmq: string;
  /** The commit of the code measured, and whether the working tree differed from it there. */
  commit: string;
  /** When the run started, in UTC. */
  date: string;
}

/** Gathers the facts; anything that cannot be found is "unknown". */
export async function describeMachine(broker: Broker): Promise<Machine> {
  const cpus = attempt(() => cpuInfo(), []);
  return {
    cpu: cpus[0]?.model.trim() || "unknown",
    cores: cpus.length || navigator.hardwareConcurrency,
    memoryGiB: attempt(() => Deno.systemMemoryInfo().total / 2 ** 30, NaN),
    loadAverage: loadAverage(),
    deno: /^deno (\S+)/.exec(await commandOutput("deno", ["--version"]))?.[1] ?? "unknown",
    amqplib: lockedVersion(await readOr(new URL("deno.lock", ROOT)), "amqplib"),
    rabbitmq: `${broker.version} (${broker.platform})`,
    commit: await commit(),
    date: new Date().toISOString().replace(/:\d\d\.\d+Z$/, " UTC").replace("T", " "),
  };
}

/** The 1, 5 and 15-minute load averages now. */
export function loadAverage(): string {
  return attempt(() => Deno.loadavg().map((load) => load.toFixed(2)).join(" "), "unknown");
}

/** The version of npm package `name` in a deno.lock. */
export function lockedVersion(lock: string, name: string): string {
  try {
    const packages = Object.keys((JSON.parse(lock) as { npm?: object }).npm ?? {});
    const found = packages.find((key) => key.startsWith(`${name}@`));
    return found?.slice(name.length + 1).split("_")[0] ?? "unknown";
  } catch {
    return "unknown";
  }
}

/** The code measured: the scripts, lib/, bench/ and the dependencies' lock. */
const MEASURED = ["new_task.ts", "worker.ts", "lib", "bench", "deno.json", "deno.lock"];

async function commit(): Promise<string> {
  const head = (await commandOutput("git", ["rev-parse", "--short", "HEAD"])).trim();
  if (head === "") return "unknown";
  const changes = await commandOutput("git", [
    "status",
    "--porcelain",
    "--",
    ...MEASURED,
    ":(exclude)bench/RESULTS.md",
  ]);
  const changed = changes.split("\n").filter((line) => line.trim() !== "").map((line) =>
    line.slice(3)
  );
  if (changed.length === 0) return `commit ${head}`;
  const named = changed.length > 4 ? [...changed.slice(0, 4), "..."] : changed;
  return `commit ${head}, with uncommitted changes to ${named.join(", ")}`;
}

function attempt<T>(read: () => T, fallback: T): T {
  try {
    return read();
  } catch {
    return fallback;
  }
}

async function readOr(path: string | URL): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return "";
  }
}

async function commandOutput(command: string, args: string[]): Promise<string> {
  try {
    const { success, stdout } = await new Deno.Command(command, { args, cwd: ROOT, stderr: "null" })
      .output();
    return success ? new TextDecoder().decode(stdout) : "";
  } catch {
    return "";
  }
}
