/**
 * Command-line flags, defined once: the same definitions parse the arguments, print `--help` and
 * write the README's flag tables, so the three never drift apart.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { parseBrokerList } from "../broker/connection.ts";
import { UsageError } from "../broker/errors.ts";
import { parseQueueType, TaskQueue, type TaskQueueOptions } from "../topology/task_queue.ts";

/** One flag of an entry script. */
export interface FlagSpec {
  /** The long name, without the leading `--`. */
  name: string;
  /** Whether the flag takes a value. */
  kind: "string" | "boolean";
  /** What the value is called in the help text (`URL`, `N`, `MS`). */
  valueName?: string;
  /** The default value, as the user would type it. */
  default?: string;
  /** An environment variable that supplies the value when the flag is absent. */
  env?: string;
  /** The flag may be given more than once; the values are joined with commas. */
  multiple?: boolean;
  /** One sentence for the help text and the README. */
  description: string;
}

/** What a script knows about itself for `--help`. */
export interface CommandSpec {
  /** The usage line, e.g. `deno task send [OPTIONS] [MESSAGE...]`. */
  usage: string;
  /** One sentence on what the script does. */
  summary: string;
  /** Its flags. */
  flags: readonly FlagSpec[];
}

/** Where a flag's value came from. */
export type FlagSource = "argument" | "env" | "default";

/** Parsed flags: string values by flag name (defaults applied), booleans as `true`/`false`. */
export interface ParsedFlags {
  /** The value of every flag, by name. */
  values: Record<string, string | boolean | undefined>;
  /** The arguments that are not flags. */
  positionals: string[];
  /** Where the value of each flag came from; undefined for a flag without one. */
  sources?: Record<string, FlagSource | undefined>;
}

/** Options for {@linkcode parseFlags}. */
export interface ParseFlagsOptions {
  /**
   * Whether arguments that are not flags are allowed.
   * @default {false}
   */
  allowPositionals?: boolean;
  /**
   * Reads an environment variable; tests pass their own.
   * @default {Deno.env.get}
   */
  getEnv?: (name: string) => string | undefined;
}

/** The flag every script has. */
export const HELP_FLAG: FlagSpec = {
  name: "help",
  kind: "boolean",
  description: "Show this help and exit.",
};

/**
 * Parses `args` strictly: an unknown flag, a missing value or a stray argument is a
 * {@linkcode UsageError}.
 */
export function parseFlags(
  specs: readonly FlagSpec[],
  args: readonly string[],
  options: ParseFlagsOptions = {},
): ParsedFlags {
  const { allowPositionals = false, getEnv = (name) => Deno.env.get(name) } = options;
  const config: Record<string, { type: "string" | "boolean"; multiple?: boolean }> = {};
  for (const spec of specs) {
    config[spec.name] = spec.multiple ? { type: spec.kind, multiple: true } : { type: spec.kind };
  }
  let parsed;
  try {
    parsed = parseArgs({ args: [...args], options: config, strict: true, allowPositionals });
  } catch (error) {
    throw new UsageError(error instanceof Error ? cleanParseError(error.message) : String(error));
  }
  const values: Record<string, string | boolean | undefined> = {};
  const sources: Record<string, FlagSource | undefined> = {};
  for (const spec of specs) {
    const raw =
      (parsed.values as Record<string, string | boolean | string[] | undefined>)[spec.name];
    const given = Array.isArray(raw) ? raw.join(",") : raw;
    if (spec.kind === "boolean") {
      values[spec.name] = given === true;
      sources[spec.name] = given === true ? "argument" : undefined;
      continue;
    }
    const env = spec.env === undefined ? undefined : getEnv(spec.env);
    const fromEnv = env === "" ? undefined : env;
    values[spec.name] = given ?? fromEnv ?? spec.default;
    sources[spec.name] = given !== undefined
      ? "argument"
      : fromEnv !== undefined
      ? "env"
      : spec.default !== undefined
      ? "default"
      : undefined;
  }
  return { values, positionals: parsed.positionals, sources };
}

// node's messages end with advice on `--` that does not apply to our scripts.
function cleanParseError(message: string): string {
  return message.replace(/\. To specify a positional argument.*$/s, "").replace(/\s*\n\s*/g, " ")
    .replace(/\.$/, "");
}

/** The longest time a flag may give in milliseconds: Deno's timers fire at once beyond it. */
export const MAX_TIMER_MS = 2_147_483_647;

/**
 * Reads an integer flag value.
 *
 * @throws {UsageError} when `value` is not a whole number from `min` to `max`.
 */
export function parseInteger(
  name: string,
  value: string | boolean | undefined,
  range: { min: number; max?: number },
): number {
  const max = range.max ?? Number.MAX_SAFE_INTEGER;
  const text = String(value ?? "");
  const number = /^-?\d+$/.test(text.trim()) ? Number(text) : NaN;
  if (!Number.isSafeInteger(number) || number < range.min || number > max) {
    const bounds = range.max === undefined
      ? `a whole number of at least ${range.min}`
      : `a whole number from ${range.min} to ${max}`;
    throw new UsageError(`Invalid value "${text}" for --${name}: expected ${bounds}`);
  }
  return number;
}

/** Reads a string flag value that must not be empty. */
export function requireString(name: string, value: string | boolean | undefined): string {
  if (typeof value !== "string" || value.trim() === "") {
    throw new UsageError(`Invalid value for --${name}: must not be empty`);
  }
  return value;
}

/** `--url`: where the broker is. */
export const URL_FLAG: FlagSpec = {
  name: "url",
  kind: "string",
  valueName: "URL",
  env: "AMQP_URL",
  default: "amqp://localhost:5672",
  multiple: true,
  description:
    "Broker address, amqp://user:pass@host:port/vhost (amqps:// for TLS). Repeat it, or give a comma-separated list, for a cluster's nodes.",
};

/**
 * `--url-file`: the broker address read from a file, so that the password is in neither the
 * process list (`ps` shows arguments) nor the environment.
 */
export const URL_FILE_FLAG: FlagSpec = {
  name: "url-file",
  kind: "string",
  valueName: "FILE",
  env: "AMQP_URL_FILE",
  description:
    "Read the broker address (or comma-separated list) from FILE, trimmed: a systemd credential or Docker secret, out of the process list and the environment. A flag wins over a variable; --url with --url-file, or AMQP_URL with AMQP_URL_FILE, is an error.",
};

/**
 * The broker address that `--url`, `--url-file`, `AMQP_URL` and `AMQP_URL_FILE` give: a flag wins
 * over a variable, and then the address itself over a file; two of the same level (`--url` and
 * `--url-file`, or both variables) are refused, since one of them would be silently ignored.
 * Without any of them, the default of `--url`.
 *
 * @throws {UsageError} when both of a level are given, the file cannot be read or is empty, or the
 * address is not one (the message never shows a password).
 */
export function brokerUrlFromFlags(flags: ParsedFlags): string {
  const { values, sources = {} } = flags;
  const level = (source: FlagSource | undefined) =>
    source === "argument" ? 2 : source === "env" ? 1 : 0;
  const urlLevel = level(sources.url);
  const fileLevel = level(sources["url-file"]);
  if (fileLevel > 0 && fileLevel === urlLevel) {
    throw new UsageError(
      fileLevel === 2
        ? "Give --url or --url-file, not both"
        : "Set AMQP_URL or AMQP_URL_FILE, not both",
    );
  }
  const url = fileLevel > urlLevel
    ? readUrlFile(requireString("url-file", values["url-file"]))
    : requireString("url", values.url);
  badInput(() => parseBrokerList(url));
  return url;
}

function readUrlFile(path: string): string {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (error) {
    throw new UsageError(`Cannot read broker URL file "${path}": ${(error as Error).message}`);
  }
  const url = text.trim();
  if (url === "") throw new UsageError(`Cannot use broker URL file "${path}": it is empty`);
  return url;
}

/** `--queue`: the task queue's name. */
export const QUEUE_FLAG: FlagSpec = {
  name: "queue",
  kind: "string",
  valueName: "NAME",
  default: "task_queue",
  description: "Name of the durable task queue.",
};

/** `--heartbeat`: seconds between AMQP heartbeats. */
export const HEARTBEAT_FLAG: FlagSpec = {
  name: "heartbeat",
  kind: "string",
  valueName: "SECONDS",
  default: "15",
  description: "Heartbeat interval; a dead broker or network is noticed within about twice this.",
};

/** `--ca`: a private CA for amqps://. */
export const CA_FLAG: FlagSpec = {
  name: "ca",
  kind: "string",
  valueName: "FILE",
  env: "AMQP_CA_FILE",
  description:
    "PEM file of the CA that signed the broker's certificate (amqps:// with a private CA).",
};

/** `--queue-type`: classic (the tutorial's) or quorum (replicated). */
export const QUEUE_TYPE_FLAG: FlagSpec = {
  name: "queue-type",
  kind: "string",
  valueName: "TYPE",
  env: "TASK_QUEUE_TYPE",
  default: "classic",
  description:
    "classic (the tutorial's, on one node) or quorum (replicated across a cluster). An existing queue is used as it is.",
};

/** `--max-retries`: part of the task queue's policy. */
export const MAX_RETRIES_FLAG: FlagSpec = {
  name: "max-retries",
  kind: "string",
  valueName: "N",
  default: "3",
  description: "Retries of a failed task before it is parked in <queue>.dead.",
};

/** `--retry-delay`: part of the task queue's policy. */
export const RETRY_DELAY_FLAG: FlagSpec = {
  name: "retry-delay",
  kind: "string",
  valueName: "MS",
  default: "1000",
  description:
    "Wait before the first retry, doubled for each further one up to 10 minutes (600000, also its largest value).",
};

/** `--allow-lossy-queue`: the opt-in for queues that can drop tasks. */
export const ALLOW_LOSSY_FLAG: FlagSpec = {
  name: "allow-lossy-queue",
  kind: "boolean",
  description:
    "Use a task queue, dead queue or delay level that another program declared so that it can drop tasks (a TTL, a length limit that drops, auto-delete, not durable) instead of refusing it with exit 1. Tasks can then be lost.",
};

/** The flags that describe the task queue and its policy, in the order help shows them. */
export const TASK_QUEUE_FLAGS: readonly FlagSpec[] = [
  QUEUE_FLAG,
  QUEUE_TYPE_FLAG,
  MAX_RETRIES_FLAG,
  RETRY_DELAY_FLAG,
  ALLOW_LOSSY_FLAG,
];

/**
 * The task queue that `--queue`, `--queue-type`, `--max-retries` and `--retry-delay` describe
 * (those of them the command has; the others keep their defaults).
 *
 * @throws {UsageError} when a value is not one the queue takes.
 */
export function taskQueueFromFlags(values: ParsedFlags["values"]): TaskQueue {
  const queue = requireString("queue", values.queue);
  const options: TaskQueueOptions = {};
  if (values["queue-type"] !== undefined) {
    const type = requireString("queue-type", values["queue-type"]);
    options.type = badInput(() => parseQueueType(type));
  }
  if (values["max-retries"] !== undefined) {
    options.maxRetries = parseInteger("max-retries", values["max-retries"], { min: 0, max: 1000 });
  }
  if (values["retry-delay"] !== undefined) {
    options.retryDelay = parseInteger("retry-delay", values["retry-delay"], {
      min: 1,
      max: 600_000,
    });
  }
  if (values["allow-lossy-queue"] === true) options.allowLossy = true;
  try {
    return new TaskQueue(queue, options);
  } catch (error) {
    if (error instanceof RangeError || error instanceof TypeError) {
      throw new UsageError(error.message);
    }
    throw error;
  }
}

/**
 * Runs a check of user input from the library, whose `TypeError` or `RangeError` then means bad
 * input: it becomes a {@linkcode UsageError} (exit 2). The same errors raised anywhere else are
 * bugs, and are reported as such.
 */
export function badInput<T>(check: () => T): T {
  try {
    return check();
  } catch (error) {
    if (error instanceof TypeError || error instanceof RangeError) {
      throw new UsageError(error.message);
    }
    throw error;
  }
}
