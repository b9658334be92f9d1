/**
 * What the figures were measured on: the machine, the runtime, the client, the broker, the code.
 *
 * @module
 */

import type { Broker } from "./_broker.ts";
import { ROOT } from "./_process.ts";

/** The facts the results file records beside the table. */
export interface Machine {
  /** The CPU model, from /proc/cpuinfo. */
  cpu: string;
  /** Logical cores. */
  cores: number;
  /** Total memory in GiB, from /proc/meminfo. */
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
  const cpuinfo = await readOr("/proc/cpuinfo");
  const meminfo = await readOr("/proc/meminfo");
  const memoryKiB = Number(/^MemTotal:\s+(\d+) kB$/m.exec(meminfo)?.[1] ?? NaN);
  return {
    cpu: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? "unknown",
    cores: cpuinfo.match(/^processor\s*:/gm)?.length ?? navigator.hardwareConcurrency,
    memoryGiB: memoryKiB / 1024 / 1024,
    loadAverage: await loadAverage(),
    deno: /^deno (\S+)/.exec(await commandOutput("deno", ["--version"]))?.[1] ?? "unknown",
    amqplib: lockedVersion(await readOr(new URL("deno.lock", ROOT)), "amqplib"),
    rabbitmq: `${broker.version} (${broker.platform})`,
    commit: await commit(),
    date: new Date().toISOString().replace(/:\d\d\.\d+Z$/, " UTC").replace("T", " "),
  };
}

/** The 1, 5 and 15-minute load averages now, from /proc/loadavg. */
export async function loadAverage(): Promise<string> {
  return (await readOr("/proc/loadavg")).split(" ").slice(0, 3).join(" ") || "unknown";
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
  return changes.trim() === ""
    ? `commit ${head}`
    : `commit ${head}, with uncommitted changes to ${MEASURED.join(", ")}`;
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
