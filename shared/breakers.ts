/**
 * The isolate's circuit breakers, one registry for every dependency that may fail (the inference
 * backends, the notification channels, the series database), with cockatiel's policy: a breaker
 * opens after `failures` consecutive failures and lets one call through after `cooldownMs`;
 * while it is open, calls fail at once with cockatiel's BrokenCircuitError.
 *
 * A breaker is named by its dependency (`ai <backend>`, `notify <channel>`, `series <backend>`);
 * asking again with other settings (a configuration change) replaces it.
 */
import { type CircuitBreakerPolicy, ConsecutiveBreaker, circuitBreaker, handleAll } from "cockatiel";

export interface BreakerSettings {
  failures: number;
  cooldownMs: number;
}

/** A circuit breaker that remembers when it opened, to tell callers when to come back. */
export class Breaker<S extends BreakerSettings = BreakerSettings> {
  readonly policy: CircuitBreakerPolicy;
  readonly settings: S;
  #openedAt = 0;

  constructor(settings: S) {
    this.settings = settings;
    this.policy = circuitBreaker(handleAll, { halfOpenAfter: settings.cooldownMs, breaker: new ConsecutiveBreaker(settings.failures) });
    this.policy.onBreak(() => {
      this.#openedAt = Date.now();
    });
  }

  execute<T>(fn: () => Promise<T>): Promise<T> {
    return this.policy.execute(fn);
  }

  /** Seconds until the breaker lets a call through again (at least 1). */
  retryAfterSeconds(now = Date.now()): number {
    return Math.max(1, Math.ceil((this.#openedAt + this.settings.cooldownMs - now) / 1000));
  }
}

const registry = new Map<string, Breaker<BreakerSettings>>();

/** The isolate's breaker named `name`; a new one when the settings change. */
export function breakerNamed<S extends BreakerSettings>(name: string, settings: S): Breaker<S> {
  const existing = registry.get(name) as Breaker<S> | undefined;
  if (existing && JSON.stringify(existing.settings) === JSON.stringify(settings)) return existing;
  const breaker = new Breaker(settings);
  registry.set(name, breaker);
  return breaker;
}

/** Forgets the breakers whose names start with `prefix` (every breaker without one; tests). */
export function forgetBreakers(prefix = ""): void {
  for (const name of [...registry.keys()]) if (name.startsWith(prefix)) registry.delete(name);
}
