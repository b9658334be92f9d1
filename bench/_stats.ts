/**
 * Summaries of repeated measurements.
 *
 * @module
 */

/**
 * The `p`th percentile of `values` (0 to 100), interpolated linearly between the two nearest
 * ranks, so that the 50th of an even count is the mean of the middle two.
 *
 * @throws {RangeError} when `values` is empty or `p` is outside 0 to 100.
 */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) throw new RangeError("Invalid values: expected at least one");
  if (!(p >= 0 && p <= 100)) throw new RangeError(`Invalid percentile "${p}": expected 0 to 100`);
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p / 100) * (sorted.length - 1);
  const below = Math.floor(rank);
  const above = Math.min(below + 1, sorted.length - 1);
  return sorted[below]! + (sorted[above]! - sorted[below]!) * (rank - below);
}

/** The median of `values`. */
export function median(values: readonly number[]): number {
  return percentile(values, 50);
}
