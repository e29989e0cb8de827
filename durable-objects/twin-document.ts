/**
 * The rules of a twin's documents, as pure functions:
 * - reported readings merge per key by timestamp: an older reading never overwrites a newer one;
 * - desired (and reported) state documents merge per key, nested objects recursively, arrays
 *   are replaced whole, `null` deletes a key (as AWS shadows do);
 * - the delta is every desired key whose value the reported view does not match;
 * - documents are bounded in size and depth.
 */

export type { Json, JsonObject, ReportedReading } from "../shared/api-types";

import type { Json, JsonObject, ReportedReading } from "../shared/api-types";

export const DOCUMENT_LIMITS = { maxBytes: 8192, maxDepth: 6 } as const;

export function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Merges `incoming` readings into `current` where they are newer; returns the names that changed. */
export function mergeReadings(current: Record<string, ReportedReading>, incoming: Record<string, ReportedReading>): string[] {
  const changed: string[] = [];
  for (const [name, reading] of Object.entries(incoming)) {
    const existing = Object.hasOwn(current, name) ? current[name] : undefined;
    if (existing && Date.parse(existing.at) > Date.parse(reading.at)) continue;
    if (existing && existing.at === reading.at && existing.value === reading.value && existing.unit === reading.unit) continue;
    current[name] = reading;
    changed.push(name);
  }
  return changed;
}

/** Applies a merge patch: objects merge per key, arrays and scalars replace, null deletes. */
export function mergeDocument(target: JsonObject, patch: JsonObject): JsonObject {
  const out: JsonObject = { ...target };
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) {
      delete out[key];
    } else if (isObject(value)) {
      const existing = Object.hasOwn(out, key) ? out[key] : undefined;
      out[key] = mergeDocument(isObject(existing) ? existing : {}, value);
    } else {
      out[key] = value;
    }
  }
  return out;
}

export function deepEqual(a: Json | undefined, b: Json | undefined): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((v, i) => deepEqual(v, b[i]));
  if (isObject(a) && isObject(b)) {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]));
  }
  return false;
}

/** Desired keys (recursively into objects) whose value the reported view does not match. */
export function computeDelta(desired: JsonObject, reported: JsonObject): JsonObject {
  const delta: JsonObject = {};
  for (const [key, want] of Object.entries(desired)) {
    const have = Object.hasOwn(reported, key) ? reported[key] : undefined;
    if (isObject(want) && isObject(have)) {
      const inner = computeDelta(want, have);
      if (Object.keys(inner).length > 0) delta[key] = inner;
    } else if (!deepEqual(want, have)) {
      delta[key] = want;
    }
  }
  return delta;
}

/** The document's nesting depth: a flat object is 1. */
export function depth(value: Json): number {
  if (Array.isArray(value)) return 1 + Math.max(0, ...value.map(depth));
  if (isObject(value)) return 1 + Math.max(0, ...Object.values(value).map(depth));
  return 0;
}

/** Why a document is over the limits, or undefined. */
export function documentProblem(doc: JsonObject, limits = DOCUMENT_LIMITS): string | undefined {
  const bytes = new TextEncoder().encode(JSON.stringify(doc)).byteLength;
  if (bytes > limits.maxBytes) return `the document would be ${bytes} bytes; the limit is ${limits.maxBytes}`;
  const d = depth(doc);
  if (d > limits.maxDepth) return `the document would nest ${d} levels deep; the limit is ${limits.maxDepth}`;
  return undefined;
}
