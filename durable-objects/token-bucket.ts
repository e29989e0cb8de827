/** A token bucket: `perSecond` sustained, `burst` at once. Kept in memory: an evicted object starts full. */
export class TokenBucket {
  #tokens: number;
  #updated: number;

  constructor(
    private perSecond: number,
    private burst: number,
    now = Date.now(),
  ) {
    this.#tokens = burst;
    this.#updated = now;
  }

  reconfigure(perSecond: number, burst: number): void {
    this.perSecond = perSecond;
    this.burst = burst;
    this.#tokens = Math.min(this.#tokens, burst);
  }

  /** Takes `count` tokens if there are enough; otherwise takes none and says how long to wait. */
  take(count: number, now = Date.now()): { ok: true } | { ok: false; retryAfterSeconds: number } {
    this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#updated) / 1000) * this.perSecond);
    this.#updated = now;
    if (count <= this.#tokens) {
      this.#tokens -= count;
      return { ok: true };
    }
    const needed = Math.min(count, this.burst) - this.#tokens;
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil(needed / this.perSecond)) };
  }
}
