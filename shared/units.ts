import type { Reading } from "./schemas/message.ts";

/**
 * Unit normalization of the seed-001 transformers: every quantity is stored in one canonical
 * unit, and the reading keeps the unit it arrived in.
 *
 * A table rather than a conversion library: the handful of homelab units (and their many
 * spellings: "°F", "F", "fahrenheit") is smaller than any library's API, and affine conversions
 * (temperatures) are where general libraries differ in rounding.
 */

interface Conversion {
  readonly canonical: string;
  readonly toCanonical: (value: number) => number;
}

const same = (canonical: string): Conversion => ({ canonical, toCanonical: (v) => v });
const scale = (canonical: string, factor: number): Conversion => ({ canonical, toCanonical: (v) => v * factor });

const CONVERSIONS: ReadonlyMap<string, Conversion> = new Map([
  ...aliases(["°c", "c", "celsius", "degc"], same("°C")),
  ...aliases(["°f", "f", "fahrenheit", "degf"], { canonical: "°C", toCanonical: (v) => ((v - 32) * 5) / 9 }),
  ...aliases(["k", "kelvin"], { canonical: "°C", toCanonical: (v) => v - 273.15 }),
  ...aliases(["%", "%rh", "percent"], same("%")),
  ...aliases(["kwh"], same("kWh")),
  ...aliases(["wh"], scale("kWh", 1 / 1000)),
  ...aliases(["j", "joule"], scale("kWh", 1 / 3_600_000)),
  ...aliases(["w", "watt"], same("W")),
  ...aliases(["kw", "kilowatt"], scale("W", 1000)),
  ...aliases(["v", "volt"], same("V")),
  ...aliases(["mv"], scale("V", 1 / 1000)),
  ...aliases(["a", "amp", "ampere"], same("A")),
  ...aliases(["ma"], scale("A", 1 / 1000)),
  ...aliases(["hpa", "mbar"], same("hPa")),
  ...aliases(["pa"], scale("hPa", 1 / 100)),
  ...aliases(["kpa"], scale("hPa", 10)),
  ...aliases(["inhg"], scale("hPa", 33.8639)),
  ...aliases(["lx", "lux"], same("lx")),
  ...aliases(["ppm"], same("ppm")),
]);

/** Decimals each canonical unit is shown with (display only, shared/display.ts); stored values keep full precision. */
export const DISPLAY_DECIMALS: Readonly<Record<string, number>> = { "°C": 1, "%": 0, kWh: 2, W: 0, V: 1, A: 2, hPa: 1, lx: 0, ppm: 0 };

function aliases(names: string[], conversion: Conversion): [string, Conversion][] {
  return names.map((name) => [name, conversion]);
}

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
  const converted = tidy(conversion.toCanonical(value));
  if (conversion.canonical === unit && converted === value) return { value, unit };
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
