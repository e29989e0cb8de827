/** How values, times and statuses read on screen. */
import { displayDecimals, unitOrNull } from "../../shared/display.ts";
import type { Json, Reading } from "./types.ts";

export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  const digits = abs >= 1000 ? 0 : abs >= 100 ? 1 : 2;
  return value.toLocaleString(undefined, { maximumFractionDigits: digits });
}

/** A reading's value at its unit's precision (shared/display.ts; the stored value keeps every digit). */
export function formatValue(value: number | boolean | undefined | null, unit?: string | null): string {
  if (value === undefined || value === null) return "—";
  if (typeof value === "boolean") return value ? "yes" : "no";
  const u = unitOrNull(unit);
  if (!Number.isFinite(value)) return String(value);
  const { min, max } = displayDecimals(u);
  const text = value.toLocaleString(undefined, { minimumFractionDigits: min, maximumFractionDigits: max });
  return u ? `${text} ${u}` : text;
}

export function formatReading(reading: Reading | undefined): string {
  return reading ? formatValue(reading.value, reading.unit) : "—";
}

/** "12 s ago", "5 min ago", "3 h ago", or the date. */
export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return "never";
  const then = Date.parse(iso);
  if (!Number.isFinite(then)) return iso;
  const s = Math.round((now - then) / 1000);
  if (s < 0) return "just now";
  if (s < 5) return "just now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(then).toLocaleString();
}

/** A moment, short: the time alone when it is today, else date and time. */
export function time(iso: string | null | undefined, now = new Date()): string {
  if (!iso) return "—";
  const d = new Date(iso);
  if (!Number.isFinite(d.getTime())) return iso;
  if (d.toDateString() === now.toDateString()) return d.toLocaleTimeString();
  return d.toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" });
}

export function json(value: Json | unknown): string {
  return JSON.stringify(value, null, 2);
}

export function isEmptyObject(value: unknown): boolean {
  return typeof value === "object" && value !== null && Object.keys(value).length === 0;
}

/** A room id as a label: living_room → Living room. */
export function roomLabel(id: string | null | undefined, name?: string | null): string {
  if (name) return name;
  if (!id) return "No room";
  const words = id.replace(/[_-]+/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}
