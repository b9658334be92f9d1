/**
 * Durations and times as people write and read them: `90s`, `2h`, `1h30m`, `1500ms`, `30d`, and
 * ISO 8601 times such as `2026-12-24T18:00:00Z`.
 *
 * @module
 */

/** `ms` in seconds to a tenth, for messages: `12500` -> `12.5 s`. */
export function formatSeconds(ms: number): string {
  return `${Math.round(ms / 100) / 10} s`;
}

/** Milliseconds in each unit a duration may use. */
const UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/**
 * Reads a duration: one or more numbers, each with its unit (`ms`, `s`, `m`, `h`, `d`), largest
 * first: `90s`, `2h`, `1h30m`, `1.5h`, `1500ms`. The result is whole milliseconds, rounded up.
 *
 * @throws {RangeError} when `text` is not such a duration, naming what was expected.
 */
export function parseDuration(text: string): number {
  const parts = [...text.trim().matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)];
  const whole = parts.map((part) => part[0]).join("");
  if (parts.length === 0 || whole !== text.trim()) {
    throw new RangeError(
      `Invalid duration "${text}": expected a number and a unit, like 1500ms, 90s, 15m, 2h, 1h30m or 30d`,
    );
  }
  let ms = 0;
  let previous = Infinity;
  for (const [, amount, unit] of parts) {
    const size = UNITS[unit!]!;
    if (size >= previous) {
      throw new RangeError(`Invalid duration "${text}": give each unit once, largest first`);
    }
    previous = size;
    ms += Number(amount) * size;
  }
  // To the microsecond first: 1.1 * 1000 is 1100.0000000000002, not a reason to wait 1101 ms.
  return Math.ceil(Math.round(ms * 1000) / 1000);
}

/**
 * Reads an ISO 8601 date and time: `2026-12-24T18:00:00Z`, `2026-12-24T19:00:00+01:00`,
 * `2026-12-24 18:00`. Without a zone it is local time, as in JavaScript.
 *
 * @throws {RangeError} when `text` is not such a time.
 */
export function parseTime(text: string): Date {
  const iso = /^(\d{4})-(\d{2})-(\d{2})[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?$/i;
  const match = iso.exec(text.trim());
  const time = match ? new Date(text.trim().replace(" ", "T")) : undefined;
  // JavaScript reads February 30 as March 2: the day must exist in its month.
  const [, year, month, day] = match ?? [];
  const daysInMonth = new Date(Date.UTC(Number(year), Number(month), 0)).getUTCDate();
  if (
    time === undefined || Number.isNaN(time.getTime()) || Number(day) < 1 ||
    Number(day) > daysInMonth
  ) {
    throw new RangeError(
      `Invalid time "${text}": expected an ISO 8601 date and time, like 2026-12-24T18:00:00Z`,
    );
  }
  return time;
}
