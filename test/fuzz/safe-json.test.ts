/** Property tests of the one JSON entry (shared/safe-json.ts) and the body splitter (functions/body.ts). */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseBatch } from "../../functions/body.ts";
import { ApiError } from "../../functions/errors.ts";
import { checkJsonValue, DEFAULT_JSON_LIMITS, FORBIDDEN_KEYS, parseJsonSafe, scanJson } from "../../shared/safe-json.ts";

const limits = { maxDepth: 8, maxBreadth: 20 };
const depthOf = (value: unknown): number =>
  typeof value === "object" && value !== null ? 1 + Math.max(0, ...Object.values(value).map(depthOf)) : 0;
const widest = (value: unknown): number =>
  typeof value === "object" && value !== null ? Math.max(Object.keys(value).length, ...Object.values(value).map(widest)) : 0;
/** JSON text with random whitespace between tokens (outside strings). */
const spaced = (value: unknown, ws: string) => JSON.stringify(value, null, ws.length ? ws : undefined);
const forbidden = fc.constantFrom(...FORBIDDEN_KEYS);

describe("parseJsonSafe", () => {
  it("never throws, and agrees with JSON.parse on every text JSON.parse takes and the limits allow", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json(), fc.stringMatching(/^[[\]{}",:0-9a\\ ]{0,40}$/)), (text) => {
        const result = parseJsonSafe(text, limits);
        let parsed: { value: unknown } | undefined;
        try {
          parsed = { value: JSON.parse(text) };
        } catch {}
        if (!parsed) expect(result.ok).toBe(false);
        else if (result.ok) expect(result.value).toEqual(parsed.value);
        else expect(["too_deep", "forbidden_key"]).toContain(result.code);
      }),
      { numRuns: 2000 },
    );
  });

  it("accepts exactly the values within the depth and breadth limits with no forbidden key", () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 12 }), fc.constantFrom("", " ", "\t", "\n  "), (value, ws) => {
        const text = spaced(value, ws);
        const result = parseJsonSafe(text, limits);
        const clean =
          checkJsonValue(JSON.parse(text), { maxDepth: Number.POSITIVE_INFINITY, maxBreadth: Number.POSITIVE_INFINITY }) === undefined;
        const fits = depthOf(JSON.parse(text)) <= limits.maxDepth && widest(JSON.parse(text)) <= limits.maxBreadth;
        expect(result.ok).toBe(clean && fits);
        if (result.ok) expect(result.value).toEqual(JSON.parse(text));
        // The walk over a built value and the scan over the text agree.
        expect(checkJsonValue(JSON.parse(text), limits) === undefined).toBe(result.ok);
      }),
      { numRuns: 1000 },
    );
  });

  it("names the limit and the place of a value nested too deep, whatever the depth", () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom("a", "b_c", 0), { minLength: 1, maxLength: 300 }), (path) => {
        let text = "1";
        for (let i = path.length - 1; i >= 0; i--) text = typeof path[i] === "number" ? `[${text}]` : `{"${path[i]}":${text}}`;
        const result = parseJsonSafe(text, limits);
        if (path.length <= limits.maxDepth) expect(result.ok).toBe(true);
        else {
          expect(result).toMatchObject({ ok: false, code: "too_deep" });
          expect(!result.ok && result.message).toContain(`${limits.maxDepth} levels`);
          expect(!result.ok && result.path).toBe(path.slice(0, limits.maxDepth).map(String).join("."));
        }
      }),
    );
  });

  it("rejects a forbidden key anywhere, however it is escaped, naming its path", () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom("payload", "metadata", "x"), { maxLength: 5 }),
        forbidden,
        fc.boolean(),
        fc.jsonValue({ maxDepth: 2 }),
        (path, key, escaped, value) => {
          const raw = escaped ? key.replace(/[a-z_]/, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`) : key;
          let text = `{"ok":1,"${raw}":${JSON.stringify(value)}}`;
          for (let i = path.length - 1; i >= 0; i--) text = `{"${path[i]}":${text}}`;
          const result = parseJsonSafe(text, DEFAULT_JSON_LIMITS);
          expect(result).toMatchObject({ ok: false, code: "forbidden_key", path: [...path, key].join(".") });
        },
      ),
    );
  });

  it("does not mistake forbidden words inside string values (or escaped quotes) for keys", () => {
    fc.assert(
      fc.property(forbidden, fc.string(), (word, noise) => {
        const text = JSON.stringify({ note: `${noise}"${word}":1`, [`${word}_ok`]: [word, { v: `\\"${word}\\"` }] });
        expect(parseJsonSafe(text).ok).toBe(true);
      }),
    );
  });

  it("scans a megabyte of deep junk without recursion", () => {
    expect(scanJson("[".repeat(1_000_000))).toMatchObject({ code: "too_deep" });
    expect(scanJson(`{"a":${"[".repeat(500_000)}`, DEFAULT_JSON_LIMITS)).toMatchObject({ code: "too_deep" });
  });
});

describe("parseBatch", () => {
  it("splits NDJSON into one item per line, rejecting a bad line alone at its index", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.jsonValue({ maxDepth: 3 }).map((v) => ({ good: true, text: JSON.stringify(v) })),
            fc.constant({ good: false, text: "[".repeat(50) }),
          ),
          {
            minLength: 1,
            maxLength: 30,
          },
        ),
        (lines) => {
          const batch = parseBatch(lines.map((l) => l.text).join("\n"), "ndjson", 100, limits);
          expect(batch.items).toHaveLength(lines.length);
          expect(batch.single).toBe(false);
          const bad = lines.flatMap((l, i) => (l.good && parseJsonSafe(l.text, limits).ok ? [] : [i]));
          expect(batch.preRejected.map((r) => r.index)).toEqual(bad);
          for (const r of batch.preRejected) expect(["too_deep", "invalid_payload", "invalid_json"]).toContain(r.code);
        },
      ),
    );
  });

  it("a JSON body: an array is a batch, anything else one message; over the limits an ApiError, never another error", () => {
    fc.assert(
      fc.property(fc.oneof(fc.json(), fc.string()), (text) => {
        try {
          const batch = parseBatch(text, "json", 5, limits);
          expect(batch.items.length).toBeGreaterThan(0);
          expect(batch.single).toBe(!Array.isArray(JSON.parse(text)));
        } catch (error) {
          expect(error).toBeInstanceOf(ApiError);
          expect((error as ApiError).status).toBeLessThan(500);
        }
      }),
      { numRuns: 1000 },
    );
  });
});
