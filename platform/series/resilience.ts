/**
 * How the series store is called when the database may be down or slow (seed 000's circuit
 * breakers, seed 003's "503 after 3 retries"), with cockatiel's policies:
 *
 * - every call has a time limit (SERIES_TIMEOUT_MS); past it the store's connections are cut;
 * - a circuit breaker per isolate and backend opens after SERIES_BREAKER_FAILURES consecutive
 *   failures and lets one call through after SERIES_BREAKER_COOLDOWN_SECONDS; while it is open,
 *   calls fail at once instead of queueing on a dead database;
 * - writes (the sink) are tried once per delivery: the queue's own retries with backoff and its
 *   dead letters are the retry discipline there (queues/consumer.ts);
 * - reads (the query API) are tried 3 times with a short backoff, within a total time bound.
 *
 * Whatever fails comes out as SeriesUnavailable, with when to try again.
 */
import {
  BrokenCircuitError,
  ExponentialBackoff,
  handleWhen,
  isBrokenCircuitError,
  isTaskCancelledError,
  retry,
  TimeoutStrategy,
  timeout,
} from "cockatiel";
import { Breaker, breakerNamed, forgetBreakers } from "../../shared/breakers";
import { readConfig } from "../../shared/config";
import { type SeriesStore, seriesBackend } from "../../shared/series/store";
import { openSeriesStore } from "./open";

/** The series layer's one error type: the store could not be reached in time; retry later. */
export class SeriesUnavailable extends Error {
  override name = "SeriesUnavailable";
  readonly retryAfterSeconds: number;
  readonly breakerOpen: boolean;

  constructor(message: string, options: { retryAfterSeconds: number; breakerOpen: boolean; cause?: unknown }) {
    super(message, { cause: options.cause });
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.breakerOpen = options.breakerOpen;
  }
}

export interface ResilienceSettings {
  failures: number;
  cooldownMs: number;
  timeoutMs: number;
}

/** Attempts a read makes before it answers unavailable (seed 003: 3 retries, then 503). */
export const READ_ATTEMPTS = 3;

export function settingsOf(env: object): ResilienceSettings {
  const config = readConfig(env);
  return {
    failures: config.SERIES_BREAKER_FAILURES,
    cooldownMs: config.SERIES_BREAKER_COOLDOWN_SECONDS * 1000,
    timeoutMs: config.SERIES_TIMEOUT_MS,
  };
}

/** The series database's breaker: the shared kind (shared/breakers.ts), with the call time limit. */
export class SeriesBreaker extends Breaker<ResilienceSettings> {}

/** The isolate's breaker for a backend; a new one when the settings change. */
export function breakerFor(env: object): Breaker<ResilienceSettings> {
  return breakerNamed(`series ${seriesBackend(env)}`, settingsOf(env));
}

/** Forgets every series breaker of this isolate (tests). */
export function resetBreakers(): void {
  forgetBreakers("series ");
}

export interface CallOptions {
  /** The store to use for each attempt (tests inject failures here). */
  open?: () => SeriesStore;
  breaker?: Breaker<ResilienceSettings>;
  /** Instead of SERIES_TIMEOUT_MS (housekeeping, which is on nobody's request path). */
  timeoutMs?: number;
}

/** One attempt: a store of its own, closed afterwards, cut off when the time limit passes. */
async function attempt<T>(open: () => SeriesStore, op: (store: SeriesStore) => Promise<T>, signal: AbortSignal): Promise<T> {
  const store = open();
  const cut = () => void closeStore(store, true);
  signal.addEventListener("abort", cut, { once: true });
  try {
    return await op(store);
  } finally {
    signal.removeEventListener("abort", cut);
    if (!signal.aborted) await closeStore(store, false);
  }
}

async function closeStore(store: SeriesStore, now: boolean): Promise<void> {
  try {
    await store.close(now);
  } catch {
    // Closing is best effort: a dead connection has nothing left to release.
  }
}

function unavailable(error: unknown, breaker: Breaker<ResilienceSettings>, what: string): SeriesUnavailable {
  if (error instanceof SeriesUnavailable) return error;
  if (isBrokenCircuitError(error) || error instanceof BrokenCircuitError) {
    return new SeriesUnavailable(`the series database is failing; the circuit breaker is open (${what} not tried)`, {
      retryAfterSeconds: breaker.retryAfterSeconds(),
      breakerOpen: true,
      cause: error,
    });
  }
  const detail = isTaskCancelledError(error)
    ? `no answer within ${breaker.settings.timeoutMs} ms`
    : error instanceof Error
      ? error.message
      : String(error);
  return new SeriesUnavailable(`the series database failed (${what}): ${detail}`.slice(0, 500), {
    retryAfterSeconds: 5,
    breakerOpen: false,
    cause: error,
  });
}

/** A write, once, through the breaker and the time limit. */
export async function writeWithBreaker<T>(env: Env, op: (store: SeriesStore) => Promise<T>, options: CallOptions = {}): Promise<T> {
  const breaker = options.breaker ?? breakerFor(env);
  const open = options.open ?? (() => openSeriesStore(env));
  const limit = timeout(options.timeoutMs ?? breaker.settings.timeoutMs, TimeoutStrategy.Aggressive);
  try {
    return await breaker.policy.execute(() => limit.execute(({ signal }) => attempt(open, op, signal)));
  } catch (error) {
    throw unavailable(error, breaker, "write");
  }
}

/**
 * A read: up to READ_ATTEMPTS tries with a short backoff, each through the breaker and the time
 * limit, all of them within READ_ATTEMPTS time limits plus a second. An open breaker is not
 * retried: it answers at once.
 */
export async function readWithRetries<T>(env: Env, op: (store: SeriesStore) => Promise<T>, options: CallOptions = {}): Promise<T> {
  const breaker = options.breaker ?? breakerFor(env);
  const open = options.open ?? (() => openSeriesStore(env));
  const perAttempt = timeout(breaker.settings.timeoutMs, TimeoutStrategy.Aggressive);
  const total = timeout(breaker.settings.timeoutMs * READ_ATTEMPTS + 1000, TimeoutStrategy.Aggressive);
  const retries = retry(
    handleWhen((error) => !isBrokenCircuitError(error)),
    { maxAttempts: READ_ATTEMPTS - 1, backoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 400 }) },
  );
  try {
    return await total.execute(({ signal }) =>
      retries.execute(() => breaker.policy.execute(() => perAttempt.execute(({ signal: inner }) => attempt(open, op, inner))), signal),
    );
  } catch (error) {
    throw unavailable(error, breaker, "read");
  }
}
