/** The Postgres store through Hyperdrive, on workerd (postgres.ts itself also runs in Node, for the benchmark). */
import postgres from "postgres";
import { PostgresSeriesStore } from "../../shared/series/postgres";
import { withWorkerdSocket } from "./workerd-socket";

/** A client for one request or batch: few connections, ended by the store's close(). */
export function connectHyperdrive(connectionString: string): PostgresSeriesStore {
  const sql = postgres(
    connectionString,
    withWorkerdSocket({
      max: 2,
      // Hyperdrive's recommended setting: no type lookup round trip on connect.
      fetch_types: false,
      connect_timeout: 5,
      onnotice: () => {},
    }),
  );
  return new PostgresSeriesStore(sql, connectionString);
}
