/**
 * The built-in anomaly detector (seed 000 flow 1's "AI analysis" with no external model): a
 * robust z-score of each new reading against a rolling window of the series' recent readings.
 *
 *   score = |x - median(window)| / (1.4826 · MAD(window))
 *
 * The median and the median absolute deviation (MAD) ignore up to half the window being
 * outliers, so a spike does not hide the next one (a mean and standard deviation would be pulled
 * towards it); 1.4826 makes the MAD estimate the standard deviation of normal noise, so the
 * score reads like an ordinary z-score. A perfectly flat window has MAD 0: the mean absolute
 * deviation stands in, then any change from the flat value scores as MAX_SCORE.
 */

export const MAX_SCORE = 1_000;

function median(sorted: readonly number[]): number {
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export interface Score {
  score: number;
  median: number;
  scale: number;
}

/** The robust z-score of `value` against `window` (the readings before it, oldest first). */
export function robustScore(window: readonly number[], value: number): Score {
  if (window.length === 0) return { score: 0, median: value, scale: 0 };
  const sorted = [...window].sort((a, b) => a - b);
  const med = median(sorted);
  const deviations = sorted.map((v) => Math.abs(v - med)).sort((a, b) => a - b);
  let scale = 1.4826 * median(deviations);
  if (scale === 0) scale = 1.2533 * (deviations.reduce((s, d) => s + d, 0) / deviations.length);
  const distance = Math.abs(value - med);
  if (scale === 0) return { score: distance === 0 ? 0 : MAX_SCORE, median: med, scale };
  return { score: Math.min(distance / scale, MAX_SCORE), median: med, scale };
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
    const result = this.values.length >= this.minSamples ? robustScore(this.values, value) : { score: 0, median: value, scale: 0 };
    this.values.push(value);
    if (this.values.length > this.size) this.values.splice(0, this.values.length - this.size);
    return result;
  }
}
