/**
 * The series store's housekeeping, run by the Worker's hourly cron: recompute the rollups of the
 * hours written since the last run, then drop raw readings past SERIES_RAW_RETENTION_DAYS and
 * rollups past SERIES_ROLLUP_RETENTION_DAYS. Rollups first, so nothing is pruned before it is
 * rolled up.
 */
import { readConfig } from "../../shared/config";
import type { RollupResult } from "../../shared/series/store";
import { DAY_MS, floorTo, HOUR_MS } from "../../shared/series/time";
import { writeWithBreaker } from "./resilience";

/** Housekeeping is not on anyone's request path: it may take its time. */
const MAINTENANCE_TIMEOUT_MS = 120_000;

export interface Maintenance {
  rollup: RollupResult;
  pruned: { raw: number; rollup: number };
}

export function retentionCutoffs(env: object, now: number): { raw: number; rollup: number } {
  const config = readConfig(env);
  return {
    raw: floorTo(now - config.SERIES_RAW_RETENTION_DAYS * DAY_MS, HOUR_MS),
    rollup: floorTo(now - config.SERIES_ROLLUP_RETENTION_DAYS * DAY_MS, DAY_MS),
  };
}

export async function maintainSeries(env: Env, now = Date.now()): Promise<Maintenance> {
  const cutoffs = retentionCutoffs(env, now);
  return writeWithBreaker(
    env,
    async (store) => {
      const rollup = await store.rollup(now, cutoffs.raw);
      const pruned = await store.prune(cutoffs);
      return { rollup, pruned };
    },
    { timeoutMs: MAINTENANCE_TIMEOUT_MS },
  );
}
