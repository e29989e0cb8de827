/**
 * Properties of the detector's options the default analysis uses (shared/anomaly.ts) and of the
 * per-device baselines (shared/analysis.ts), with fast-check: bounds, invariance under shifting
 * and scaling the series, ramps, the resolution floor, warm-up, redelivery and alternating verdicts.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type AnalysisSettings, Baselines, type StoredBaseline } from "../../shared/analysis";
import { MAX_SCORE, RollingDetector, robustScore, type ScoreOptions } from "../../shared/anomaly";

const OPTIONS: ScoreOptions[] = [{}, { trend: true }, { resolution: true }, { trend: true, resolution: true }];
const options = fc.constantFrom(...OPTIONS);
const series = fc.array(fc.integer({ min: -10_000, max: 10_000 }), { minLength: 2, maxLength: 80 });
const value = fc.integer({ min: -20_000, max: 20_000 });

const same = (a: number, b: number) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));

function memoryBaselines(): Baselines {
  const rows = new Map<string, StoredBaseline>();
  return new Baselines({ load: (m) => rows.get(m), save: (m, b) => rows.set(m, b), find: () => undefined, open: () => [] });
}

const SETTINGS: AnalysisSettings = { rule_id: "r", rule_name: "r", severity: "info", score: 5, window: 30, min_samples: 10 };

describe("robustScore with the default's options", () => {
  it("is finite, at least 0 and at most MAX_SCORE", () => {
    fc.assert(
      fc.property(series, value, options, (w, v, o) => {
        const r = robustScore(w, v, o);
        expect(Number.isFinite(r.score) && r.score >= 0 && r.score <= MAX_SCORE).toBe(true);
        expect(r.sigma).toBeGreaterThanOrEqual(0);
      }),
    );
  });

  it("does not change when the whole series is shifted or scaled", () => {
    fc.assert(
      fc.property(
        series,
        value,
        options,
        fc.integer({ min: -1_000_000, max: 1_000_000 }),
        fc.integer({ min: 1, max: 1000 }),
        (w, v, o, c, k) => {
          const base = robustScore(w, v, o).score;
          expect(
            same(
              robustScore(
                w.map((x) => x + c),
                v + c,
                o,
              ).score,
              base,
            ),
          ).toBe(true);
          expect(
            same(
              robustScore(
                w.map((x) => x * k),
                v * k,
                o,
              ).score,
              base,
            ),
          ).toBe(true);
        },
      ),
    );
  });

  it("with trend: the next value of a straight ramp scores 0", () => {
    fc.assert(
      fc.property(fc.integer({ min: -1000, max: 1000 }), fc.integer({ min: -50, max: 50 }), fc.integer({ min: 2, max: 80 }), (a, b, n) => {
        const ramp = Array.from({ length: n }, (_, i) => a + b * i);
        expect(robustScore(ramp, a + b * n, { trend: true }).score).toBe(0);
      }),
    );
  });

  it("with resolution: one step of a series that only flickers between two values is never an outlier", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -1000, max: 1000 }),
        fc.integer({ min: 1, max: 100 }),
        fc.array(fc.boolean(), { minLength: 3, maxLength: 80 }).filter((bits) => bits.some((b) => b) && bits.some((b) => !b)),
        (v, q, bits) => {
          const w = bits.map((b) => (b ? v + q : v));
          expect(robustScore(w, v + q, { resolution: true }).score).toBeLessThan(2);
          expect(robustScore(w, v, { resolution: true }).score).toBeLessThan(2);
        },
      ),
    );
  });

  it("RollingDetector keeps at most its size and scores nothing before minSamples", () => {
    fc.assert(
      fc.property(
        fc.array(value, { maxLength: 120 }),
        fc.integer({ min: 2, max: 60 }),
        fc.integer({ min: 1, max: 60 }),
        options,
        (vs, size, min, o) => {
          const d = new RollingDetector(size, min, [], o);
          vs.forEach((v, i) => {
            const r = d.push(v);
            if (i < min) expect(r.score).toBe(0);
            expect(d.values.length).toBeLessThanOrEqual(size);
          });
        },
      ),
    );
  });
});

describe("Baselines", () => {
  const readings = fc.array(fc.double({ min: -1e6, max: 1e6, noNaN: true }), { minLength: 1, maxLength: 80 });

  it("gives no verdict while warming up, skips a redelivered batch, and alternates fired / cleared per metric", () => {
    fc.assert(
      fc.property(readings, (vs) => {
        const b = memoryBaselines();
        const batch = { settings: { m: SETTINGS }, readings: vs.map((value, i) => ({ id: `r${i}`, at: 1000 + i, metric: "m", value })) };
        const first = b.observe("d", batch);
        const transitions = first.transitions.map((t) => t.transition);
        if (vs.length <= SETTINGS.min_samples) expect(transitions).toEqual([]);
        transitions.forEach((t, i) => {
          expect(t).toBe(i % 2 === 0 ? "fired" : "cleared");
        });
        // Each verdict change publishes one result, nothing else does.
        expect(first.results).toHaveLength(first.transitions.length);
        const again = b.observe("d", batch);
        expect(again).toMatchObject({ transitions: [], results: [], scored: 0, skipped: vs.length });
      }),
    );
  });
});
