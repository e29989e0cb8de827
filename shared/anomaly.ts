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
 */

export const MAX_SCORE = 1_000;
export const LEVEL_SPAN = 5;

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export interface Score {
  score: number;
  level: number;
  sigma: number;
}

/** The robust z-score of `value` against `window` (the readings before it, oldest first). */
export function robustScore(window: readonly number[], value: number): Score {
  if (window.length < 2) return { score: 0, level: value, sigma: 0 };
  const level = median(window.slice(-LEVEL_SPAN));
  const diffs = window.slice(1).map((v, i) => v - (window[i] as number));
  const center = median(diffs);
  const deviations = diffs.map((d) => Math.abs(d - center));
  let sigma = (1.4826 * median(deviations)) / Math.SQRT2;
  if (sigma === 0) sigma = (1.2533 * (deviations.reduce((s, d) => s + d, 0) / deviations.length)) / Math.SQRT2;
  const distance = Math.abs(value - level);
  if (sigma === 0) return { score: distance === 0 ? 0 : MAX_SCORE, level, sigma };
  const span = Math.min(LEVEL_SPAN, window.length);
  return { score: Math.min(distance / (sigma * Math.sqrt(1 + Math.PI / (2 * span))), MAX_SCORE), level, sigma };
}

/** A series' detector: keeps the last `size` readings and scores each new one before adding it. */
export class RollingDetector {
  readonly values: number[];

  constructor(
    readonly size: number,
    readonly minSamples: number,
    initial: readonly number[] = [],
  ) {
    this.values = initial.slice(-size);
  }

  /** The new reading's score (0 until the window holds `minSamples`), then the reading joins the window. */
  push(value: number): Score {
    const result = this.values.length >= this.minSamples ? robustScore(this.values, value) : { score: 0, level: value, sigma: 0 };
    this.values.push(value);
    if (this.values.length > this.size) this.values.splice(0, this.values.length - this.size);
    return result;
  }
}
