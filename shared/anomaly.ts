/**
 * The built-in anomaly detector (seed 000 flow 1's "AI analysis" with no external model): a
 * robust z-score of each new reading against a rolling window of the series' recent readings.
 *
 *   level = median of the last LEVEL_SPAN readings         (where the series is now)
 *   σ     = 1.4826 · MAD(successive differences) / √2       (its noise, trend removed)
 *   score = |x − level| / (σ · √(1 + π / (2 · LEVEL_SPAN)))
 *
 * Medians and the median absolute deviation (MAD) ignore outliers in the window, so a spike does
 * not hide the next one (a mean and standard deviation are pulled towards it), and differences
 * remove slow trends such as a daily temperature cycle, which would otherwise count as noise.
 * 1.4826 makes the MAD estimate the standard deviation of normal noise (√2 undoes the
 * differencing; the last factor is the level's own uncertainty), so the score reads like an
 * ordinary z-score. A perfectly flat window has no noise: the mean absolute difference stands
 * in, and then any change from the flat value scores MAX_SCORE.
 *
 * Two options, used by the default analysis on the stream (shared/analysis.ts, docs/ai.md) and
 * off for alert rules: `trend` carries each of the last LEVEL_SPAN readings forward along the
 * window's median step before taking their median, so a steady ramp such as an energy counter is
 * not a deviation;
 * `resolution` keeps σ at least half the smallest step between the window's distinct successive
 * differences (the sensor's resolution), so a series whose noise is under its step (a mains voltage in whole volts,
 * nearly always one value) does not score the next step up as an outlier. A window of one value
 * has no step: any change from it still scores MAX_SCORE.
 */

export const MAX_SCORE = 1_000;
export const LEVEL_SPAN = 5;

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/**
 * The series' resolution: the smallest gap between distinct successive differences (0 when they
 * are all equal). Gaps under a billionth of the largest difference are rounding, not steps.
 */
function resolutionOf(diffs: readonly number[]): number {
  const sorted = [...diffs].sort((a, b) => a - b);
  const tiny = 1e-9 * Math.max(Math.abs(sorted[0] ?? 0), Math.abs(sorted[sorted.length - 1] ?? 0));
  let step = 0;
  for (let i = 1; i < sorted.length; i++) {
    const gap = (sorted[i] as number) - (sorted[i - 1] as number);
    if (gap > tiny && (step === 0 || gap < step)) step = gap;
  }
  return step;
}

export interface ScoreOptions {
  /** Project the level along the window's median step (a steady ramp is no anomaly). */
  readonly trend?: boolean;
  /** σ is at least half the smallest gap between the window's distinct successive differences. */
  readonly resolution?: boolean;
}

export interface Score {
  score: number;
  level: number;
  sigma: number;
}

/** The robust z-score of `value` against `window` (the readings before it, oldest first). */
export function robustScore(window: readonly number[], value: number, options: ScoreOptions = {}): Score {
  if (window.length < 2) return { score: 0, level: value, sigma: 0 };
  const span = Math.min(LEVEL_SPAN, window.length);
  const diffs = window.slice(1).map((v, i) => v - (window[i] as number));
  const center = median(diffs);
  const recent = window.slice(-LEVEL_SPAN);
  // With `trend`, each recent reading is carried forward along the median step to now before the
  // median: on a ramp an outlier among them must not shift the level by a rank.
  const level = median(options.trend ? recent.map((v, j) => v + center * (recent.length - j)) : recent);
  const deviations = diffs.map((d) => Math.abs(d - center));
  let sigma = (1.4826 * median(deviations)) / Math.SQRT2;
  if (sigma === 0) sigma = (1.2533 * (deviations.reduce((s, d) => s + d, 0) / deviations.length)) / Math.SQRT2;
  if (options.resolution) sigma = Math.max(sigma, resolutionOf(diffs) / 2);
  const distance = Math.abs(value - level);
  if (sigma === 0) return { score: distance === 0 ? 0 : MAX_SCORE, level, sigma };
  return { score: Math.min(distance / (sigma * Math.sqrt(1 + Math.PI / (2 * span))), MAX_SCORE), level, sigma };
}

/** A series' detector: keeps the last `size` readings and scores each new one before adding it. */
export class RollingDetector {
  readonly values: number[];
  readonly size: number;
  readonly minSamples: number;
  readonly options: ScoreOptions;

  constructor(size: number, minSamples: number, initial: readonly number[] = [], options: ScoreOptions = {}) {
    this.size = size;
    this.minSamples = minSamples;
    this.options = options;
    this.values = initial.slice(-size);
  }

  /** The new reading's score (0 until the window holds `minSamples`), then the reading joins the window. */
  push(value: number): Score {
    const result =
      this.values.length >= this.minSamples ? robustScore(this.values, value, this.options) : { score: 0, level: value, sigma: 0 };
    this.values.push(value);
    if (this.values.length > this.size) this.values.splice(0, this.values.length - this.size);
    return result;
  }
}
