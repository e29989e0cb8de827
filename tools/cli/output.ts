/** Human output: tables (the archive tool's), cells from JSON values, times made short. */
import { table } from "../archive/output.ts";

export { table };

export function cell(value: unknown): string {
  if (value === null || value === undefined) return "-";
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return JSON.stringify(value);
}

/** A table from objects and the columns to show: `[header, key or getter]`. Numbers align right. */
export function rowsTable<T>(rows: T[], columns: [string, keyof T | ((row: T) => unknown)][], empty = "(none)"): string {
  if (rows.length === 0) return empty;
  const values = rows.map((row) => columns.map(([, pick]) => (typeof pick === "function" ? pick(row) : row[pick])));
  const right = columns.map((_, i) => values.every((v) => typeof v[i] === "number"));
  return table(
    columns.map(([header]) => header),
    values.map((v) => v.map(cell)),
    right,
  );
}

/** `key: value` lines, for one object. */
export function fields(entries: [string, unknown][]): string {
  const width = Math.max(...entries.map(([k]) => k.length));
  return entries.map(([k, v]) => `${`${k}:`.padEnd(width + 1)} ${cell(v)}`).join("\n");
}
