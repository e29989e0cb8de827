/**
 * The one JSON entry for untrusted text (HTTP bodies, NDJSON lines, the agent's batches, MQTT
 * payloads): a single iterative pass over the text bounds the nesting depth and the entries of
 * any one object or array, and rejects keys that name an object's prototype machinery, before
 * `JSON.parse` builds anything. Every later step (zod, size walks, `JSON.stringify`, structured
 * clone to a Durable Object, patch merges) recurses at most `maxDepth` deep.
 *
 * Why the keys: `JSON.parse` keeps `"__proto__"` as an own key, but the first plain assignment
 * (`out[key] = value`, as zod's object and record parsing do) sets the prototype instead, so the
 * key silently vanishes. No reading name, metadata key or field is allowed to be one of these.
 */

export interface JsonLimits {
  /** Deepest nesting of objects and arrays; the top-level value is depth 1. */
  maxDepth: number;
  /** Most entries in any one object or array. */
  maxBreadth: number;
}

export const DEFAULT_JSON_LIMITS: JsonLimits = { maxDepth: 32, maxBreadth: 10_000 };

/** The limits of the edge's configuration (readConfig(env): MAX_JSON_DEPTH, MAX_JSON_BREADTH), e.g. for MQTT payloads. */
export function jsonLimitsOf(config: { MAX_JSON_DEPTH: number; MAX_JSON_BREADTH: number } | undefined): JsonLimits {
  return config ? { maxDepth: config.MAX_JSON_DEPTH, maxBreadth: config.MAX_JSON_BREADTH } : DEFAULT_JSON_LIMITS;
}

/** Keys no object read from outside may have. */
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(["__proto__", "constructor", "prototype"]);

export type SafeJsonFailure = {
  ok: false;
  /** `too_deep` for the depth and breadth limits, `forbidden_key`, or `invalid_json`. */
  code: "too_deep" | "forbidden_key" | "invalid_json";
  /** Dot-joined path of the field at fault (`payload.__proto__`), empty for the whole. */
  path: string;
  message: string;
};
export type SafeJsonResult = { ok: true; value: unknown } | SafeJsonFailure;

interface Frame {
  array: boolean;
  /** Commas seen so far: the index of the current entry. */
  entries: number;
  /** In an object: whether the next string is a key. */
  expectKey: boolean;
  /** The current key, as the text's quoted slice (decoded only for an error's path). */
  keyStart: number;
  keyEnd: number;
}

const QUOTE = 34;
const BACKSLASH = 92;
const OPEN_OBJECT = 123;
const CLOSE_OBJECT = 125;
const OPEN_ARRAY = 91;
const CLOSE_ARRAY = 93;
const COMMA = 44;

function keyOf(text: string, f: Frame): string {
  const quoted = text.slice(f.keyStart, f.keyEnd + 1);
  try {
    return JSON.parse(quoted) as string;
  } catch {
    return quoted.slice(1, -1);
  }
}

function pathOf(text: string, stack: readonly Frame[]): string {
  return stack.map((f) => (f.array ? String(f.entries) : keyOf(text, f))).join(".");
}

/** Only keys of these lengths, or written with escapes, can be forbidden: the rest are never sliced. */
const FORBIDDEN_LENGTHS = new Set([...FORBIDDEN_KEYS].map((k) => k.length));

/** Checks the shape limits and keys without building anything; `undefined` when the text passes. */
export function scanJson(text: string, limits: JsonLimits = DEFAULT_JSON_LIMITS): SafeJsonFailure | undefined {
  const stack: Frame[] = [];
  const length = text.length;
  // The next backslash at or after the current position (Infinity when there is none).
  let nextBackslash = text.indexOf("\\");
  if (nextBackslash === -1) nextBackslash = Number.POSITIVE_INFINITY;
  let i = 0;
  while (i < length) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      // Find the closing quote: one not preceded by an odd run of backslashes.
      let end = text.indexOf('"', i + 1);
      while (end !== -1) {
        let backslashes = 0;
        for (let k = end - 1; k > i && text.charCodeAt(k) === BACKSLASH; k--) backslashes++;
        if (backslashes % 2 === 0) break;
        end = text.indexOf('"', end + 1);
      }
      if (end === -1) return undefined; // unterminated: JSON.parse says so
      if (nextBackslash < i) {
        nextBackslash = text.indexOf("\\", i);
        if (nextBackslash === -1) nextBackslash = Number.POSITIVE_INFINITY;
      }
      const top = stack[stack.length - 1];
      if (top && !top.array && top.expectKey) {
        top.keyStart = i;
        top.keyEnd = end;
        top.expectKey = false;
        const escaped = nextBackslash < end;
        if (escaped || FORBIDDEN_LENGTHS.has(end - i - 1)) {
          let key: string;
          try {
            key = escaped ? (JSON.parse(text.slice(i, end + 1)) as string) : text.slice(i + 1, end);
          } catch {
            return undefined; // a bad escape: JSON.parse says so
          }
          if (FORBIDDEN_KEYS.has(key)) {
            return { ok: false, code: "forbidden_key", path: pathOf(text, stack), message: `"${key}" is not allowed as a key` };
          }
        }
      }
      i = end + 1;
      continue;
    }
    if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (stack.length >= limits.maxDepth) {
        return {
          ok: false,
          code: "too_deep",
          path: pathOf(text, stack),
          message: `nested deeper than the limit of ${limits.maxDepth} levels (MAX_JSON_DEPTH)`,
        };
      }
      stack.push({ array: c === OPEN_ARRAY, entries: 0, expectKey: c === OPEN_OBJECT, keyStart: 0, keyEnd: -1 });
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      stack.pop();
    } else if (c === COMMA) {
      const top = stack[stack.length - 1];
      if (top) {
        top.entries++;
        if (top.entries >= limits.maxBreadth) {
          return {
            ok: false,
            code: "too_deep",
            path: pathOf(text, stack.slice(0, -1)),
            message: `an ${top.array ? "array" : "object"} with more than the limit of ${limits.maxBreadth} entries (MAX_JSON_BREADTH)`,
          };
        }
        if (!top.array) top.expectKey = true;
      }
    }
    i++;
  }
  return undefined;
}

/** Parses untrusted JSON text under the limits: the value, or why not (never throws). */
export function parseJsonSafe(text: string, limits: JsonLimits = DEFAULT_JSON_LIMITS): SafeJsonResult {
  const failure = scanJson(text, limits);
  if (failure) return failure;
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (error) {
    return { ok: false, code: "invalid_json", path: "", message: `not valid JSON: ${(error as Error).message}` };
  }
}

/**
 * Whether an already-built value keeps within the limits and has no forbidden key — for values
 * that did not come through {@link parseJsonSafe} (a structured clone, a query object). Iterative.
 */
export function checkJsonValue(value: unknown, limits: JsonLimits = DEFAULT_JSON_LIMITS): SafeJsonFailure | undefined {
  const todo: { value: unknown; depth: number; path: string }[] = [{ value, depth: 0, path: "" }];
  const join = (path: string, key: string) => (path ? `${path}.${key}` : key);
  for (let item = todo.pop(); item; item = todo.pop()) {
    if (typeof item.value !== "object" || item.value === null) continue;
    if (item.depth >= limits.maxDepth) {
      return { ok: false, code: "too_deep", path: item.path, message: `nested deeper than the limit of ${limits.maxDepth} levels` };
    }
    const keys = Object.keys(item.value);
    if (keys.length > limits.maxBreadth) {
      return { ok: false, code: "too_deep", path: item.path, message: `more than the limit of ${limits.maxBreadth} entries` };
    }
    for (const key of keys) {
      if (FORBIDDEN_KEYS.has(key)) {
        return { ok: false, code: "forbidden_key", path: join(item.path, key), message: `"${key}" is not allowed as a key` };
      }
      todo.push({ value: (item.value as Record<string, unknown>)[key], depth: item.depth + 1, path: join(item.path, key) });
    }
  }
  return undefined;
}
