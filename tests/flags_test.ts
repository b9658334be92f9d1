import assert from "node:assert/strict";
import { UsageError } from "../lib/broker/errors.ts";
import { type FlagSpec, parseFlags, parseInteger, QUEUE_FLAG, URL_FLAG } from "../lib/cli/flags.ts";
import { formatFlagTable, formatHelp } from "../lib/cli/help.ts";

const SPECS: FlagSpec[] = [
  URL_FLAG,
  QUEUE_FLAG,
  { name: "prefetch", kind: "string", valueName: "N", default: "1", description: "Prefetch." },
  { name: "help", kind: "boolean", description: "Help." },
];

Deno.test("parseFlags() applies defaults, then the environment, then the command line", () => {
  const none = parseFlags(SPECS, [], { getEnv: () => undefined });
  assert.equal(none.values.url, "amqp://localhost:5672");
  assert.equal(none.values.queue, "task_queue");
  assert.equal(none.values.help, false);
  const env = parseFlags(SPECS, [], {
    getEnv: (name) => name === "AMQP_URL" ? "amqp://env" : undefined,
  });
  assert.equal(env.values.url, "amqp://env");
  const flag = parseFlags(SPECS, ["--url", "amqp://flag"], { getEnv: () => "amqp://env" });
  assert.equal(flag.values.url, "amqp://flag");
  const empty = parseFlags(SPECS, [], { getEnv: () => "" });
  assert.equal(empty.values.url, "amqp://localhost:5672", "an empty variable counts as unset");
});

Deno.test("parseFlags() keeps positionals when allowed and rejects them otherwise", () => {
  const parsed = parseFlags(SPECS, ["Hello", "--queue=q", "World..."], { allowPositionals: true });
  assert.deepEqual(parsed.positionals, ["Hello", "World..."]);
  assert.equal(parsed.values.queue, "q");
  assert.throws(() => parseFlags(SPECS, ["stray"]), UsageError);
});

Deno.test("parseFlags() rejects unknown flags and missing values with a UsageError", () => {
  assert.throws(() => parseFlags(SPECS, ["--nope"]), {
    name: "UsageError",
    message: /Unknown option '--nope'/,
  });
  assert.throws(() => parseFlags(SPECS, ["--prefetch"]), UsageError);
  assert.throws(() => parseFlags(SPECS, ["--help=yes"]), UsageError);
});

Deno.test("parseInteger() accepts whole numbers in range only", () => {
  assert.equal(parseInteger("prefetch", "10", { min: 1 }), 10);
  assert.equal(parseInteger("dot-ms", "0", { min: 0 }), 0);
  for (const bad of ["0", "-1", "1.5", "ten", "", " ", "1e3", "99999999999999999999"]) {
    assert.throws(() => parseInteger("prefetch", bad, { min: 1, max: 65535 }), UsageError, bad);
  }
  assert.throws(() => parseInteger("prefetch", "70000", { min: 1, max: 65535 }), {
    message: 'Invalid value "70000" for --prefetch: expected a whole number from 1 to 65535',
  });
});

Deno.test("formatHelp() and formatFlagTable() list every flag with its default and variable", () => {
  const help = formatHelp({ usage: "x [OPTIONS]", summary: "Does x.", flags: SPECS });
  assert.match(help, /^Does x\.\n\nUsage: x \[OPTIONS\]\n/);
  assert.match(
    help,
    /--url URL +Broker address.*\(env AMQP_URL; default amqp:\/\/localhost:5672\)/,
  );
  assert.match(help, /--prefetch N +Prefetch\. \(default 1\)/);
  const table = formatFlagTable(SPECS).split("\n");
  assert.equal(table.length, 2 + SPECS.length);
  assert.equal(
    table[2],
    "| `--url URL` | `AMQP_URL` | `amqp://localhost:5672` | " + URL_FLAG.description + " |",
  );
});
