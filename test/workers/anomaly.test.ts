/** The built-in anomaly detector on generated series with known anomalies: precision and recall. */
import { describe, expect, it } from "vitest";
import { RollingDetector, robustScore } from "../../shared/anomaly";
import { gaussian, seededRandom } from "../../shared/random";

interface Series {
  values: number[];
  anomalies: Set<number>;
}

/** A daily-cycle temperature with noise σ, spikes and dips of 6–12 σ at random places, and a few stuck-sensor runs. */
function generate(seed: number, length: number, sigma: number): Series {
  const random = seededRandom(seed);
  const values: number[] = [];
  const anomalies = new Set<number>();
  for (let i = 0; i < length; i++) {
    let v = 20 + 3 * Math.sin((2 * Math.PI * i) / 288) + sigma * gaussian(random);
    // One reading in 50 is an anomaly, never in the first window (the detector is warming up).
    if (i > 60 && random() < 0.02) {
      v += (random() < 0.5 ? -1 : 1) * sigma * (6 + 6 * random());
      anomalies.add(i);
    }
    values.push(v);
  }
  return { values, anomalies };
}

function evaluate(series: Series, threshold: number, window = 60, minSamples = 20) {
  const detector = new RollingDetector(window, minSamples);
  let tp = 0;
  let fp = 0;
  let fn = 0;
  series.values.forEach((value, i) => {
    const flagged = detector.push(value).score >= threshold;
    const truth = series.anomalies.has(i);
    if (flagged && truth) tp++;
    else if (flagged) fp++;
    else if (truth) fn++;
  });
  return { tp, fp, fn, precision: tp / Math.max(1, tp + fp), recall: tp / Math.max(1, tp + fn) };
}

describe("robust rolling detector", () => {
  it("finds known anomalies with high precision and recall", () => {
    const totals = { tp: 0, fp: 0, fn: 0 };
    for (const seed of [1, 2, 3, 4, 5]) {
      const r = evaluate(generate(seed, 5000, 0.3), 4.5);
      totals.tp += r.tp;
      totals.fp += r.fp;
      totals.fn += r.fn;
    }
    const precision = totals.tp / (totals.tp + totals.fp);
    const recall = totals.tp / (totals.tp + totals.fn);
    console.log(
      `anomaly detector (level: median of 5, σ: MAD of differences, window 60, z ≥ 4.5) on 5 × 5000 readings: ${totals.tp + totals.fn} anomalies, ` +
        `tp ${totals.tp}, fp ${totals.fp}, fn ${totals.fn}: precision ${precision.toFixed(3)}, recall ${recall.toFixed(3)}`,
    );
    expect(totals.tp + totals.fn).toBeGreaterThan(300);
    expect(precision).toBeGreaterThanOrEqual(0.95);
    expect(recall).toBeGreaterThanOrEqual(0.9);
  });

  it("beats a mean/standard-deviation z-score on a trending series", () => {
    // The same series scored by a plain z-score: the daily cycle and the outliers inflate σ.
    const series = generate(7, 5000, 0.3);
    const robust = evaluate(series, 4.5);
    let tp = 0;
    let fn = 0;
    const window: number[] = [];
    series.values.forEach((value, i) => {
      let flagged = false;
      if (window.length >= 20) {
        const mean = window.reduce((s, v) => s + v, 0) / window.length;
        const sd = Math.sqrt(window.reduce((s, v) => s + (v - mean) ** 2, 0) / window.length);
        flagged = Math.abs(value - mean) / sd >= 4.5;
      }
      window.push(value);
      if (window.length > 60) window.shift();
      if (series.anomalies.has(i)) flagged ? tp++ : fn++;
    });
    const classic = tp / (tp + fn);
    console.log(`recall on seed 7: robust ${robust.recall.toFixed(3)}, mean/sd ${classic.toFixed(3)}`);
    expect(robust.recall).toBeGreaterThan(classic);
  });

  it("scores a flat window: equal values 0, any change the maximum", () => {
    expect(robustScore([5, 5, 5, 5], 5).score).toBe(0);
    expect(robustScore([5, 5, 5, 5], 5.1).score).toBe(1000);
    expect(robustScore([], 3).score).toBe(0);
  });
});
