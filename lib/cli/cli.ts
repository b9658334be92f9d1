/**
 * What every entry script does around its real work: parse flags, answer `--help`, and turn
 * failures into one line on stderr and an exit code (0 ok, 1 runtime failure, 2 usage).
 *
 * @module
 */

import { AmqpError, describeError, UsageError } from "../broker/errors.ts";
import { redactSecrets } from "../broker/url.ts";
import { type CommandSpec, type ParsedFlags, parseFlags } from "./flags.ts";

/** Exit codes, as documented in the README. */
export const EXIT = { ok: 0, failure: 1, usage: 2, waitTimeout: 3, interrupted: 130 } as const;

/** Options for {@linkcode runCommand}. */
export interface RunCommandOptions<C> {
  /**
   * Whether the script takes arguments that are not flags.
   * @default {false}
   */
  allowPositionals?: boolean;
  /**
   * Turns parsed flags into the script's settings; may throw TypeError, RangeError, UsageError.
   * It may be async, to load the code for a flag only when the flag is given.
   */
  configure: (flags: ParsedFlags) => C | Promise<C>;
  /** Does the work and returns the exit code. */
  run: (config: C) => Promise<number>;
}

/** Runs an entry script's `main`. */
export async function runCommand<C>(
  command: CommandSpec,
  args: readonly string[],
  options: RunCommandOptions<C>,
): Promise<number> {
  let config: C;
  try {
    const flags = parseFlags(command.flags, args, {
      allowPositionals: options.allowPositionals ?? false,
    });
    if (flags.values.help === true) {
      const { formatHelp } = await import("./help.ts");
      console.log(formatHelp(command));
      return EXIT.ok;
    }
    config = await options.configure(flags);
  } catch (error) {
    // Only errors raised for bad input are usage errors; any other is a bug, with its stack.
    if (error instanceof UsageError) {
      console.error(`${describeError(error)}\nUsage: ${command.usage} (see --help)`);
      return EXIT.usage;
    }
    throw error;
  }
  try {
    return await options.run(config);
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`${describeError(error)}\nUsage: ${command.usage} (see --help)`);
      return EXIT.usage;
    }
    if (error instanceof AmqpError) {
      console.error(describeError(error));
    } else {
      // A bug: the whole stack is the bug report (credentials still removed).
      const text = error instanceof Error ? error.stack ?? error.message : String(error);
      console.error(`Unexpected error: ${redactSecrets(text)}`);
    }
    return EXIT.failure;
  }
}
