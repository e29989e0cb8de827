/** Time arithmetic of the series store: milliseconds since the epoch, buckets from the epoch (UTC). */

export const SECOND_MS = 1000;
export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;

/** The start of the bucket of `size` that holds `time`. */
export const floorTo = (time: number, size: number) => time - (((time % size) + size) % size);
/** The first bucket boundary at or after `time`. */
export const ceilTo = (time: number, size: number) => floorTo(time + size - 1, size);
