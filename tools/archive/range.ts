/** Time ranges on the command line: `--from` and `--to`, half-open, in UTC unless they say otherwise. */
import { hourOf } from "../../shared/archive.ts";
import { UsageError } from "./errors.ts";

export interface TimeRange {
  /** Inclusive, ms since the epoch. */
  from: number;
  /** Exclusive. */
  to: number;
}

const UNITS: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * `now`; a duration ago (`90m`, `24h`, `7d`); a date (`2026-11-23`, midnight UTC); or a date-time
 * (`2026-11-23T14:00`, UTC unless it carries `Z` or an offset).
 */
export function parseTime(text: string, now: number, flag: string): number {
  const value = text.trim();
  if (value === "now") return now;
  const ago = /^(\d+)([mhd])$/.exec(value);
  if (ago) return now - Number(ago[1]) * (UNITS[ago[2] ?? "h"] ?? 0);
  const zoned = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(value) ? `${value}Z` : value;
  const ms = /^\d{4}-\d{2}-\d{2}/.test(zoned) ? Date.parse(zoned) : Number.NaN;
  if (Number.isNaN(ms)) {
    throw new UsageError(`--${flag} "${text}" is not a time: use now, 90m, 24h, 7d, 2026-11-23 or 2026-11-23T14:00[Z|±hh:mm]`);
  }
  return ms;
}

export function parseRange(from: string | undefined, to: string | undefined, now = Date.now()): TimeRange {
  if (from === undefined) throw new UsageError("--from is required (for example --from 24h, or --from 2026-11-23)");
  const range = { from: parseTime(from, now, "from"), to: to === undefined ? now : parseTime(to, now, "to") };
  if (range.to <= range.from) throw new UsageError("--to must be later than --from");
  return range;
}

/** The UTC hours (`YYYY-MM-DDTHH`) that the range touches, in order. */
export function hoursIn(range: TimeRange): string[] {
  const hours: string[] = [];
  for (let t = Math.floor(range.from / 3_600_000) * 3_600_000; t < range.to; t += 3_600_000) hours.push(hourOf(t));
  return hours;
}

/** Whether a span of time [first, last] meets the range. */
export function overlaps(range: TimeRange, first: string, last: string): boolean {
  return Date.parse(last) >= range.from && Date.parse(first) < range.to;
}

export function inRange(range: TimeRange, timestamp: string): boolean {
  const t = Date.parse(timestamp);
  return t >= range.from && t < range.to;
}

export function describeRange(range: TimeRange): { from: string; to: string } {
  return { from: new Date(range.from).toISOString(), to: new Date(range.to).toISOString() };
}
