/**
 * The words a script shows about its flags: the `--help` text and the README's flag tables, both
 * made from the flags' definitions. Loaded only when asked for: a script that runs never needs it.
 *
 * @module
 */

import type { CommandSpec, FlagSpec } from "./flags.ts";

function flagLabel(spec: FlagSpec): string {
  return spec.kind === "string" ? `--${spec.name} ${spec.valueName ?? "VALUE"}` : `--${spec.name}`;
}

function flagNotes(spec: FlagSpec): string {
  const notes: string[] = [];
  if (spec.env !== undefined) notes.push(`env ${spec.env}`);
  if (spec.default !== undefined) notes.push(`default ${spec.default}`);
  return notes.length === 0 ? "" : ` (${notes.join("; ")})`;
}

/** The `--help` text. */
export function formatHelp(command: CommandSpec): string {
  const labels = command.flags.map(flagLabel);
  const width = Math.max(...labels.map((label) => label.length));
  const lines = command.flags.map((spec, i) =>
    `  ${labels[i]!.padEnd(width)}  ${spec.description}${flagNotes(spec)}`
  );
  return `${command.summary}\n\nUsage: ${command.usage}\n\nOptions:\n${lines.join("\n")}\n`;
}

/** The README's markdown table of a script's flags. */
export function formatFlagTable(flags: readonly FlagSpec[]): string {
  const rows = flags.map((spec) => {
    const env = spec.env === undefined ? "" : `\`${spec.env}\``;
    const fallback = spec.default === undefined ? "" : `\`${spec.default}\``;
    return `| \`${flagLabel(spec)}\` | ${env} | ${fallback} | ${spec.description} |`;
  });
  return ["| Flag | Env | Default | Meaning |", "| --- | --- | --- | --- |", ...rows].join("\n");
}
