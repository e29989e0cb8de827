import type { Reading } from "./schemas/message.ts";

/**
 * Unit normalization of the seed-001 transformers: every quantity is stored in one canonical
 * unit, and the reading keeps the unit it arrived in.
 *
 * A table rather than a conversion library: the handful of homelab units (and their many
 * spellings: "°F", "F", "fahrenheit") is smaller than any library's API, and affine conversions
 * (temperatures) are where general libraries differ in rounding. The table is data (UNIT_TABLE):
 * a device type nobody has heard of gets canonical units by the units it sends, no code branch.
 */

interface Conversion {
  readonly canonical: string;
  /** canonical = value × factor + offset */
  readonly factor: number;
  readonly offset: number;
}

/**
 * The units table, as data: each row is the spellings of one unit, the canonical unit of its
 * quantity, and the linear map to it (value × factor + offset). A new quantity is a new row.
 */
export const UNIT_TABLE: readonly (readonly [spellings: readonly string[], canonical: string, factor: number, offset: number])[] = [
  [["°c", "c", "celsius", "degc"], "°C", 1, 0],
  [["°f", "f", "fahrenheit", "degf"], "°C", 5 / 9, -160 / 9],
  [["k", "kelvin"], "°C", 1, -273.15],
  [["%", "%rh", "percent"], "%", 1, 0],
  [["kwh"], "kWh", 1, 0],
  [["wh"], "kWh", 1 / 1000, 0],
  [["mwh"], "kWh", 1000, 0],
  [["j", "joule"], "kWh", 1 / 3_600_000, 0],
  [["w", "watt"], "W", 1, 0],
  [["kw", "kilowatt"], "W", 1000, 0],
  [["va"], "VA", 1, 0],
  [["var"], "var", 1, 0],
  [["v", "volt"], "V", 1, 0],
  [["mv"], "V", 1 / 1000, 0],
  [["a", "amp", "ampere"], "A", 1, 0],
  [["ma"], "A", 1 / 1000, 0],
  [["hz", "hertz"], "Hz", 1, 0],
  [["hpa", "mbar"], "hPa", 1, 0],
  [["pa"], "hPa", 1 / 100, 0],
  [["kpa"], "hPa", 10, 0],
  [["bar"], "hPa", 1000, 0],
  [["psi"], "hPa", 68.9476, 0],
  [["inhg"], "hPa", 33.8639, 0],
  [["lx", "lux"], "lx", 1, 0],
  [["ppm"], "ppm", 1, 0],
  [["ppb"], "ppb", 1, 0],
  [["µg/m³", "ug/m3", "µg/m3"], "µg/m³", 1, 0],
  [["db", "dba"], "dB", 1, 0],
  [["m³", "m3"], "m³", 1, 0],
  [["l", "liter", "litre"], "m³", 1 / 1000, 0],
  [["m³/h", "m3/h"], "m³/h", 1, 0],
  [["l/min"], "m³/h", 0.06, 0],
  [["s", "sec", "seconds"], "s", 1, 0],
  [["min"], "s", 60, 0],
  [["h"], "s", 3600, 0],
  [["dbm"], "dBm", 1, 0],
  [["m/s"], "m/s", 1, 0],
  [["km/h"], "m/s", 1 / 3.6, 0],
  [["mm"], "mm", 1, 0],
  [["mm/h"], "mm/h", 1, 0],
];

const CONVERSIONS: ReadonlyMap<string, Conversion> = new Map(
  UNIT_TABLE.flatMap(([spellings, canonical, factor, offset]) => spellings.map((s) => [s, { canonical, factor, offset }] as const)),
);

/** Decimals each canonical unit is shown with (display only, shared/display.ts); stored values keep full precision. */
export const DISPLAY_DECIMALS: Readonly<Record<string, number>> = { "°C": 1, "%": 0, kWh: 2, W: 0, V: 1, A: 2, hPa: 1, lx: 0, ppm: 0 };

export interface Normalized {
  value: number;
  unit: string;
  /** The value and unit as the device sent them, when they differ from the canonical ones. */
  original?: { value: number; unit: string };
}

/** Rounds away floating-point noise (21.999999999 → 22) without losing sensor precision. */
function tidy(value: number): number {
  return Number.parseFloat(value.toPrecision(12));
}

/** Converts to the canonical unit of the quantity; unknown units pass through unchanged. */
export function normalize(value: number, unit: string | undefined): Normalized {
  if (unit === undefined) return { value, unit: "" };
  const conversion = CONVERSIONS.get(unit.trim().toLowerCase());
  if (!conversion) return { value, unit };
  const converted = tidy(value * conversion.factor + conversion.offset);
  // `converted`, not `value`: the same number, but -0 becomes 0 as on every other path.
  if (conversion.canonical === unit && converted === value) return { value: converted, unit };
  return { value: converted, unit: conversion.canonical, original: { value, unit } };
}

/** Normalizes every reading that carries a unit; bare numbers and booleans pass unchanged. */
export function normalizeReadings(readings: Record<string, Reading>): Record<string, Reading> {
  const out: Record<string, Reading> = {};
  for (const [name, reading] of Object.entries(readings)) {
    if (typeof reading === "object") {
      const n = normalize(reading.value, reading.unit);
      out[name] = n.original ? { value: n.value, unit: n.unit, original: n.original } : reading;
    } else {
      out[name] = reading;
    }
  }
  return out;
}

export function isKnownUnit(unit: string): boolean {
  return CONVERSIONS.has(unit.trim().toLowerCase());
}
