/**
 * Durations as people read them in messages.
 *
 * @module
 */

/** `ms` in seconds to a tenth, for messages: `12500` -> `12.5 s`. */
export function formatSeconds(ms: number): string {
  return `${Math.round(ms / 100) / 10} s`;
}
