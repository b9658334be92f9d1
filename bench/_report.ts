/**
 * The results table: its rows, the verdict on each target, and the markdown it is printed as.
 *
 * @module
 */

/** What a number in a row counts. */
export type Unit = "tasks/s" | "ms" | "MB";

/**
 * A row's target: ours over plain at least `ratioAtLeast` (rates), at most `ratioAtMost` (times),
 * or ours below `below`.
 */
export type Target = { ratioAtLeast: number } | { ratioAtMost: number } | { below: number };

/** One measurement. */
export interface Row {
  /** What was measured, without the unit. */
  name: string;
  /** The unit of `plain` and `ours`. */
  unit: Unit;
  /** Plain amqplib's figure, when there is one to compare with. */
  plain?: number;
  /** Our scripts' figure. */
  ours?: number;
  /** The goal, when there is one. */
  target?: Target;
  /** Why the row has no figures. */
  error?: string;
}

/** Ours over plain, when the row has both. */
export function ratio(row: Row): number | undefined {
  if (row.plain === undefined || row.ours === undefined || row.plain === 0) return undefined;
  return row.ours / row.plain;
}

/** "pass", "miss", "error", or "—" for a row without a target. */
export function verdict(row: Row): string {
  if (row.error !== undefined) return "error";
  if (row.target === undefined) return "—";
  if ("ratioAtLeast" in row.target || "ratioAtMost" in row.target) {
    const value = ratio(row);
    if (value === undefined) return "error";
    const met = "ratioAtLeast" in row.target
      ? value >= row.target.ratioAtLeast
      : value <= row.target.ratioAtMost;
    return met ? "pass" : "miss";
  }
  if (row.ours === undefined) return "error";
  return row.ours < row.target.below ? "pass" : "miss";
}

/** A figure as the table shows it: whole tasks per second, tenths of ms and MB. */
export function formatValue(value: number | undefined, unit: Unit): string {
  if (value === undefined || !Number.isFinite(value)) return "—";
  if (unit === "tasks/s") return Math.round(value).toLocaleString("en-US");
  return value.toFixed(1);
}

/** Ours over plain to two decimals; below 0.01, to two significant digits, so it is not 0.00. */
export function formatRatio(value: number | undefined): string {
  if (value === undefined || !Number.isFinite(value)) return "—";
  return value === 0 || value >= 0.01 ? value.toFixed(2) : value.toPrecision(2);
}

function formatTarget(row: Row): string {
  if (row.target === undefined) return "—";
  if ("ratioAtLeast" in row.target) return `≥ ${row.target.ratioAtLeast.toFixed(2)}`;
  if ("ratioAtMost" in row.target) return `≤ ${row.target.ratioAtMost.toFixed(2)}`;
  return `< ${row.target.below} ${row.unit}`;
}

/** The rows as a markdown table, padded as `deno fmt` pads it. */
export function formatTable(rows: readonly Row[]): string {
  const header = ["Measurement", "Plain amqplib", "Ours", "Ours / plain", "Target", "Result"];
  const cells = rows.map((row) => {
    const value = ratio(row);
    return [
      `${row.name} (${row.unit})`,
      formatValue(row.plain, row.unit),
      formatValue(row.ours, row.unit),
      formatRatio(value),
      formatTarget(row),
      verdict(row),
    ];
  });
  const widths = header.map((title, i) =>
    Math.max(title.length, ...cells.map((line) => line[i]!.length))
  );
  // Figures read best right-aligned; the first column is text.
  const line = (values: readonly string[]) =>
    `| ${
      values.map((v, i) => i === 0 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!)).join(" | ")
    } |`;
  const rule = `| ${
    widths.map((w, i) => i === 0 ? "-".repeat(w) : "-".repeat(w - 1) + ":").join(" | ")
  } |`;
  return [line(header), rule, ...cells.map(line)].join("\n");
}

/** One line per row that failed, naming it and saying why; empty when none did. */
export function formatErrors(rows: readonly Row[]): string {
  const seen = new Set<string>();
  const lines: string[] = [];
  for (const row of rows) {
    if (row.error === undefined || seen.has(row.error)) continue;
    seen.add(row.error);
    lines.push(`- ${row.name}: ${row.error}`);
  }
  return lines.join("\n");
}
