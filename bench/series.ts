/**
 * bench/series — rows per second into PostgreSQL through the series sink's write path, next to a
 * plain multi-row INSERT and a COPY of the same rows, in the same run.
 *
 * Starts a throwaway PostgreSQL cluster (scripts/lib/postgres.ts, the Debian package's
 * binaries), applies the series migrations, and makes readings the way the sink does: seed
 * 004's energy meter messages (four readings each) through `rowsOf`, batched as the sink gets
 * them — the readings of one consumer batch of `--batch-messages` messages (100, the queues'
 * max_batch_size). Then, one batch after another over one connection, it writes them:
 *
 *   sink            PostgresSeriesStore.write: one statement with the rows as one JSON
 *                   parameter, ON CONFLICT DO NOTHING, the rollup marks and the latest values
 *   sink, replay    the same batches again: every row a duplicate (a redelivery of everything)
 *   INSERT          INSERT INTO … VALUES (…), (…) with one parameter per value, no ON CONFLICT,
 *                   into a table with the same columns, key and indexes
 *   COPY            COPY … FROM STDIN (text format) per batch, into that table
 *
 * Each round empties the tables and runs every target once, in a rotated order; rows/s is the
 * median over the rounds, p50/p99 are over every batch of every round. Memory: the PostgreSQL
 * server's process tree (RSS from /proc) at the end of each target's run and this process's
 * peak RSS. "other CPU" is the cores anything else on the machine kept busy meanwhile (mean over
 * the rounds): above about 0.25 the row is low by an unknown amount. It prints figures and never fails on one; it exits 1 when a target stored a
 * different number of rows than it was given.
 *
 *   node bench/series.ts [--messages 20000] [--batch-messages 100] [--rounds 3] [--markdown]
 */
import { connect, type Socket } from "node:net";
import { cpus, loadavg } from "node:os";
import { parseArgs } from "node:util";
import postgres, { type Sql } from "postgres";
import { migrate } from "../infra/postgres/migrate.ts";
import { type PostgresCluster, startPostgres } from "../scripts/lib/postgres.ts";
import { machineBusySeconds, treeCpuSeconds, treeUsage } from "./lib/proc.ts";
import { fixed, ratio, summarize } from "./lib/stats.ts";
import { type Column, markdownTable, textTable } from "./lib/table.ts";
import "./lib/worker-modules.ts";

const { PostgresSeriesStore } = await import("../shared/series/postgres.ts");
const { rowsOf } = await import("../shared/series/rows.ts");
type SeriesRow = import("../shared/schemas/series.ts").SeriesRow;
type Envelope = import("../shared/schemas/message.ts").Envelope;

const USAGE = `usage: node bench/series.ts [--messages 20000] [--batch-messages 100] [--rounds 3] [--markdown]`;
const flags = (() => {
  try {
    return parseArgs({
      options: {
        messages: { type: "string", default: process.env.BENCH_MESSAGES ?? "20000" },
        "batch-messages": { type: "string", default: process.env.BENCH_BATCH_MESSAGES ?? "100" },
        rounds: { type: "string", default: process.env.BENCH_ROUNDS ?? "3" },
        markdown: { type: "boolean", default: false },
        quick: { type: "boolean", default: false },
      },
      strict: true,
    }).values;
  } catch (error) {
    console.error(`bench/series: ${(error as Error).message}\n${USAGE}`);
    process.exit(2);
  }
})();
/** --quick (or BENCH_QUICK=1): the short run CI makes so the bench cannot rot. */
const QUICK = flags.quick || process.env.BENCH_QUICK === "1";
const MESSAGES = QUICK ? Math.min(2000, Number(flags.messages)) : Number(flags.messages);
const BATCH_MESSAGES = Number(flags["batch-messages"]);
const ROUNDS = QUICK ? 1 : Number(flags.rounds);
if (![MESSAGES, BATCH_MESSAGES, ROUNDS].every((n) => Number.isInteger(n) && n > 0)) {
  console.error(`bench/series: --messages, --batch-messages and --rounds take positive integers\n${USAGE}`);
  process.exit(2);
}

const COLUMNS = ["time", "device", "metric", "value", "unit", "message_id", "room", "tags"] as const;

/** Seed 004's meters, one message a second each, four readings a message. */
function makeBatches(): SeriesRow[][] {
  const meters = 20;
  const start = Date.parse("2026-01-03T00:00:00Z");
  const batches: SeriesRow[][] = [];
  let batch: SeriesRow[] = [];
  let messagesInBatch = 0;
  for (let i = 0; i < MESSAGES; i++) {
    const meter = `meter${i % meters}`;
    const time = new Date(start + Math.floor(i / meters) * 1000).toISOString();
    const power = 0.3 + ((i * 7919) % 3000) / 1000;
    const message = {
      id: `bench-${i}`,
      correlation_id: `bench-${i}`,
      source: meter,
      type: "metric",
      exchange: "metrics",
      routing_key: `metrics.sensors.energy.utility`,
      timestamp: time,
      received_at: time,
      payload: { total_energy_kwh: 1000 + i / 1000, power_kw: power, voltage: 230 + (i % 5), current: (power * 1000) / 230 },
      metadata: {},
      schema_version: 1,
    } as Envelope;
    batch.push(...rowsOf(message));
    if (++messagesInBatch === BATCH_MESSAGES) {
      batches.push(batch);
      batch = [];
      messagesInBatch = 0;
    }
  }
  if (batch.length > 0) batches.push(batch);
  return batches;
}

const copyText = (rows: readonly SeriesRow[]) =>
  rows
    .map((r) =>
      [new Date(r.time).toISOString(), r.device, r.metric, String(r.value), r.unit, r.message_id, r.room ?? "\\N", JSON.stringify(r.tags)]
        .map((field) =>
          field
            .replaceAll("\\", field === "\\N" ? "\\" : "\\\\")
            .replaceAll("\t", "\\t")
            .replaceAll("\n", "\\n"),
        )
        .join("\t"),
    )
    .join("\n")
    .concat("\n");

interface Target {
  name: string;
  table: "readings" | "bench_readings";
  write(sql: Sql, rows: SeriesRow[]): Promise<void>;
  /** Rows the table must hold after a round. */
  expected(total: number): number;
}

const targets: Target[] = [
  {
    name: "sink",
    table: "readings",
    write: async (sql, rows) => {
      await new PostgresSeriesStore(sql).write(rows);
    },
    expected: (total) => total,
  },
  {
    name: "sink, replay",
    table: "readings",
    write: async (sql, rows) => {
      const inserted = await new PostgresSeriesStore(sql).write(rows);
      if (inserted !== 0) throw new Error(`a replay inserted ${inserted} rows`);
    },
    expected: (total) => total,
  },
  {
    name: "INSERT",
    table: "bench_readings",
    write: async (sql, rows) => {
      await sql`INSERT INTO bench_readings ${sql(
        rows.map((r) => ({ ...r, time: new Date(r.time), tags: sql.json(r.tags) })),
        ...COLUMNS,
      )}`;
    },
    expected: (total) => total,
  },
  {
    name: "COPY",
    table: "bench_readings",
    write: async (sql, rows) => {
      const stream = await sql`COPY bench_readings (time, device, metric, value, unit, message_id, room, tags) FROM STDIN`.writable();
      await new Promise<void>((resolve, reject) => {
        stream.on("error", reject);
        stream.on("finish", resolve);
        stream.end(copyText(rows));
      });
    },
    expected: (total) => total,
  },
];

/**
 * TCP with Nagle off, for every target alike. postgres.js writes COPY's data and its CopyDone as
 * two writes; with Nagle on, the small second one waits for the server's delayed ACK (about
 * 40 ms) on every COPY, which would measure the kernel, not COPY. (postgres.js does not type the
 * `socket` option, hence the spread.)
 */
function noDelaySocket(): object {
  return {
    socket: ({ host, port }: { host: string[]; port: number[] }) =>
      new Promise<Socket>((resolve, reject) => {
        const socket = connect({ host: host[0], port: port[0], noDelay: true });
        socket.once("connect", () => resolve(socket));
        socket.once("error", reject);
      }),
  };
}

interface Measured {
  seconds: number[];
  batchMs: number[];
  serverRssMb: number[];
  /** Cores busy with anything but this benchmark and its server, per run. */
  otherCores: number[];
}

/** CPU seconds of the machine, of the server's process tree and of this process, now. */
function cpuNow(pg: PostgresCluster) {
  const pid = pg.serverPid();
  const usage = process.cpuUsage();
  return {
    machine: machineBusySeconds(),
    server: pid === undefined ? undefined : treeCpuSeconds(pid),
    self: (usage.user + usage.system) / 1e6,
  };
}

function serverRssMb(pg: PostgresCluster): number | undefined {
  const pid = pg.serverPid();
  const usage = pid === undefined ? undefined : treeUsage(pid);
  return usage ? usage.rssBytes / 1_048_576 : undefined;
}

async function main(): Promise<number> {
  const batches = makeBatches();
  const total = batches.reduce((n, b) => n + b.length, 0);
  console.log(
    `bench/series: ${MESSAGES} messages → ${total} rows in ${batches.length} batches of ${BATCH_MESSAGES} messages (${batches[0]?.length} rows), ${ROUNDS} rounds`,
  );
  const pg = await startPostgres();
  const sql = postgres(pg.url, { max: 1, onnotice: () => {}, ...noDelaySocket() });
  let failures = 0;
  try {
    const migrated = await migrate(sql);
    console.log(
      `PostgreSQL ${pg.major} on 127.0.0.1:${pg.port}, ${migrated.timescale ? "TimescaleDB" : "plain PostgreSQL (no timescaledb)"}`,
    );
    await sql`CREATE TABLE bench_readings (LIKE readings INCLUDING ALL)`;
    const measured = new Map<string, Measured>(targets.map((t) => [t.name, { seconds: [], batchMs: [], serverRssMb: [], otherCores: [] }]));
    let peakRss = process.memoryUsage().rss;

    // Warm-up, not counted: the server's caches and postgres.js's prepared statements.
    for (const target of targets.filter((t) => t.name !== "sink, replay")) {
      await sql`TRUNCATE readings, bench_readings, series_dirty_hours, series_latest`;
      for (const batch of batches.slice(0, 5)) await target.write(sql, batch);
    }

    for (let round = 0; round < ROUNDS; round++) {
      await sql`TRUNCATE readings, bench_readings, series_dirty_hours, series_latest`;
      // The order rotates each round ("sink, replay" always right after "sink", whose rows it replays).
      const groups = [[targets[0], targets[1]], [targets[2]], [targets[3]]];
      const order = [...groups.slice(round % groups.length), ...groups.slice(0, round % groups.length)].flat();
      for (const target of order) {
        if (!target) continue;
        const m = measured.get(target.name);
        if (!m) continue;
        if (target.table === "bench_readings") await sql`TRUNCATE bench_readings`;
        await sql`CHECKPOINT`;
        const cpuBefore = cpuNow(pg);
        const started = performance.now();
        for (const batch of batches) {
          const t0 = performance.now();
          await target.write(sql, batch);
          m.batchMs.push(performance.now() - t0);
        }
        const wall = (performance.now() - started) / 1000;
        m.seconds.push(wall);
        const cpuAfter = cpuNow(pg);
        if (
          cpuBefore.machine !== undefined &&
          cpuAfter.machine !== undefined &&
          cpuBefore.server !== undefined &&
          cpuAfter.server !== undefined
        ) {
          const other = cpuAfter.machine - cpuBefore.machine - (cpuAfter.server - cpuBefore.server) - (cpuAfter.self - cpuBefore.self);
          m.otherCores.push(Math.max(0, other / wall));
        }
        peakRss = Math.max(peakRss, process.memoryUsage().rss);
        const rss = serverRssMb(pg);
        if (rss !== undefined) m.serverRssMb.push(rss);
        const [count] = await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM ${sql(target.table)}`;
        if (count?.n !== target.expected(total)) {
          failures++;
          console.error(`${target.name}: ${count?.n} rows stored, expected ${target.expected(total)}`);
        }
      }
    }

    const columns: Column[] = [
      { header: "target" },
      { header: "rows" },
      { header: "batch rows", align: "right" },
      { header: "rows/s", align: "right" },
      { header: "vs INSERT", align: "right" },
      { header: "p50 ms/batch", align: "right" },
      { header: "p99 ms/batch", align: "right" },
      { header: "server RSS MB", align: "right" },
      { header: "other CPU", align: "right" },
    ];
    const median = (xs: number[]) => summarize(xs).p50;
    const rowsPerSecond = (name: string) => total / median(measured.get(name)?.seconds ?? []);
    const insertRate = rowsPerSecond("INSERT");
    const rows = targets.map((t) => {
      const m = measured.get(t.name) as Measured;
      const latency = summarize(m.batchMs);
      const rate = rowsPerSecond(t.name);
      return [
        t.name,
        String(total),
        String(batches[0]?.length ?? 0),
        fixed(rate, 0),
        ratio(rate, insertRate),
        fixed(latency.p50, 2),
        fixed(latency.p99, 2),
        m.serverRssMb.length ? fixed(Math.max(...m.serverRssMb), 0) : "-",
        m.otherCores.length ? fixed(summarize(m.otherCores).mean, 2) : "-",
      ];
    });
    console.log(`\n${textTable(columns, rows)}`);
    console.log(
      `\nbench process peak RSS ${fixed(peakRss / 1_048_576, 0)} MB; ${cpus().length} cores (${cpus()[0]?.model ?? "?"}), load ${loadavg()
        .map((l) => l.toFixed(2))
        .join(" ")}; node ${process.version}`,
    );
    const busiest = Math.max(...[...measured.values()].flatMap((m) => m.otherCores));
    if (busiest > 0.25)
      console.log(`note: other work used up to ${fixed(busiest, 2)} cores during a run; those figures are low by an unknown amount`);
    if (flags.markdown) console.log(`\n${markdownTable(columns, rows)}`);
  } finally {
    await sql.end();
    pg.destroy();
  }
  return failures > 0 ? 1 : 0;
}

process.exit(await main());
