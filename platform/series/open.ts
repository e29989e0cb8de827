/**
 * The series store for one request or one batch: PostgreSQL/TimescaleDB through Hyperdrive when
 * the Worker has a HYPERDRIVE binding, the embedded D1 database otherwise. Apart from the
 * interface (shared/series/store.ts) because the Postgres path needs workerd's sockets.
 */
import { D1SeriesStore } from "../../shared/series/d1";
import { hyperdriveOf, type SeriesStore } from "../../shared/series/store";
import { connectHyperdrive } from "./hyperdrive";

export function openSeriesStore(env: Env): SeriesStore {
  const hyperdrive = hyperdriveOf(env);
  return hyperdrive ? connectHyperdrive(hyperdrive.connectionString) : new D1SeriesStore(env.DB);
}
