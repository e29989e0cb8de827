/**
 * Readings as people read them: a value is rounded only when shown, to its unit's precision
 * (DISPLAY_DECIMALS beside the unit table in units.ts), so `18.3333333333 °C` reads `18.3 °C`.
 * Stored values and API answers keep full precision. The CLI, `tail` and the dashboard share this.
 */
import { DISPLAY_DECIMALS } from "./units.ts";

/** Values without a unit, or in a unit outside the table, show at most this many decimals. */
export const DEFAULT_MAX_DECIMALS = 3;

/** "No unit" has one representation everywhere it is answered or shown: null (never "" or undefined). */
export function unitOrNull(unit: string | null | undefined): string | null {
  return typeof unit === "string" && unit.trim() !== "" ? unit : null;
}

/** The decimals a value in this unit is shown with: exactly that many for a known unit, else at most DEFAULT_MAX_DECIMALS. */
export function displayDecimals(unit: string | null | undefined): { min: number; max: number } {
  const known = unit ? DISPLAY_DECIMALS[unit] : undefined;
  return known === undefined ? { min: 0, max: DEFAULT_MAX_DECIMALS } : { min: known, max: known };
}

/** A number at its unit's precision, without locale grouping: `18.3`, `41`, `1.235`. */
export function displayNumber(value: number, unit?: string | null): string {
  if (!Number.isFinite(value)) return String(value);
  const { min, max } = displayDecimals(unit);
  const fixed = value.toFixed(max);
  const text = min === max ? fixed : fixed.replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, "");
  return text === "-0" || /^-0\.0*$/.test(text) ? text.slice(1) : text;
}

/** A reading's value as text: booleans as-is, numbers at their unit's precision, the unit appended (`sep` between). */
export function displayReading(value: unknown, unit?: string | null, sep = " "): string {
  const u = unitOrNull(unit);
  const text = typeof value === "number" ? displayNumber(value, u) : String(value);
  return u ? `${text}${sep}${u}` : text;
}
