/** The series store's behaviour, one suite for both implementations (D1 and PostgreSQL). */
import { describe, expect, it } from "vitest";
import type { SeriesQuery } from "../../../shared/schemas/series";
import { resolveSeriesQuery, runSeriesQuery } from "../../../shared/series/query";
import { rowsOf } from "../../../shared/series/rows";
import { DAY_MS, HOUR_MS } from "../../../shared/series/time";
import { uniqueId } from "../helpers";
import { backend, hoursAgo, label, metric, rowsPerMessage, seriesSql, withStore } from "./helpers";

const LIMITS = { maxPoints: 10_000, maxRangeDays: 3660, rawRetentionDays: 30 };

async function query(q: Partial<SeriesQuery> & { metric: string }, now = Date.now()) {
  const resolved = resolveSeriesQuery({ agg: "avg", ...q } as SeriesQuery, now, LIMITS);
  if (!resolved.ok) throw new Error(`${resolved.path}: ${resolved.message}`);
  return withStore((store) => runSeriesQuery(store, resolved.query));
}

/** Readings of one device at the given offsets (minutes from `base`) with the given values. */
function readings(device: string, base: number, values: [minute: number, value: number][], name = "temperature", room = "den") {
  return values.flatMap(([minute, value], i) =>
    rowsOf(
      metric(
        `${device}-m${i}`,
        device,
        { [name]: { value, unit: "°C" } },
        { time: base + minute * 60_000, routing_key: `metrics.sensors.t.${room}` },
      ),
    ),
  );
}

describe(`the series store (${label})`, () => {
  it("stores each reading once however often a message is written, and counts only new rows", async () => {
    const device = uniqueId("idem");
    const message = metric(`${device}-1`, device, { temperature: { value: 21.5, unit: "°C" }, humidity: 40, door_open: true });
    const rows = rowsOf(message);
    expect(await withStore((s) => s.write(rows))).toBe(3);
    expect(await withStore((s) => s.write(rows))).toBe(0);
    // A redelivery inside one batch: the same rows twice in one write.
    expect(await withStore((s) => s.write([...rows, ...rows]))).toBe(0);
    expect(await rowsPerMessage(device)).toEqual({ [message.id]: 3 });
  });

  it("keeps the same message id from two devices apart: ids are only unique per device", async () => {
    const [a, b] = [uniqueId("dev-a"), uniqueId("dev-b")];
    const time = hoursAgo(1);
    await withStore((s) =>
      s.write([...rowsOf(metric("tel-123456", a, { x: 1 }, { time })), ...rowsOf(metric("tel-123456", b, { x: 2 }, { time }))]),
    );
    expect(await rowsPerMessage(a)).toEqual({ "tel-123456": 1 });
    expect(await rowsPerMessage(b)).toEqual({ "tel-123456": 1 });
  });

  it("stores booleans as 1 and 0 with unit bool, bare numbers without a unit, and the original unit as a tag", async () => {
    const device = uniqueId("kinds");
    const time = hoursAgo(2);
    const [f, door, plain] = rowsOf(
      metric(
        `${device}-1`,
        device,
        { temperature: { value: 22, unit: "°C", original: { value: 71.6, unit: "°F" } }, door: false, level: 3 },
        { time },
      ),
    );
    expect([f?.unit, f?.tags.original_unit, door?.value, door?.unit, plain?.unit]).toEqual(["°C", "°F", 0, "bool", ""]);
    await withStore((s) => s.write([f, door, plain].flatMap((r) => (r ? [r] : []))));
    const answer = await query({ metric: "door", device, bucket: { text: "raw", seconds: 0 }, start: new Date(time - 1).toISOString() });
    expect(answer.series).toEqual([{ device, unit: "bool", points: [{ time: new Date(time).toISOString(), value: 0 }] }]);
  });

  it("answers avg, min, max, sum, count and last per bucket", async () => {
    const device = uniqueId("agg");
    const base = hoursAgo(5);
    await withStore((s) =>
      s.write(
        readings(device, base, [
          [1, 10],
          [20, 30],
          [10, 20],
          [61, 5],
        ]),
      ),
    );
    const range = { start: new Date(base).toISOString(), end: new Date(base + 2 * HOUR_MS).toISOString() };
    const bucket = { text: "30m", seconds: 1800 };
    const values = async (agg: SeriesQuery["agg"]) =>
      (await query({ metric: "temperature", device, bucket, agg, ...range })).series[0]?.points.map((p) => p.value);
    expect(await values("avg")).toEqual([20, 5]);
    expect(await values("min")).toEqual([10, 5]);
    expect(await values("max")).toEqual([30, 5]);
    expect(await values("sum")).toEqual([60, 5]);
    expect(await values("count")).toEqual([3, 1]);
    expect(await values("last")).toEqual([30, 5]);
    const answer = await query({ metric: "temperature", device, bucket, ...range });
    expect(answer.series[0]?.points.map((p) => p.time)).toEqual([new Date(base).toISOString(), new Date(base + 3600_000).toISOString()]);
    expect(answer.series[0]?.unit).toBe("°C");
  });

  it("aggregates a room over time across its devices, or answers per device", async () => {
    const room = uniqueId("room").replaceAll(".", "-");
    const [a, b] = [uniqueId("ra"), uniqueId("rb")];
    const base = hoursAgo(6);
    await withStore((s) =>
      s.write([
        ...readings(
          a,
          base,
          [
            [0, 20],
            [5, 22],
          ],
          "temperature",
          room,
        ),
        ...readings(b, base, [[3, 18]], "temperature", room),
      ]),
    );
    const range = {
      start: new Date(base).toISOString(),
      end: new Date(base + HOUR_MS).toISOString(),
      bucket: { text: "1h", seconds: 3600 },
    };
    const byRoom = await query({ metric: "temperature", room, ...range });
    expect(byRoom.group).toBe("room");
    expect(byRoom.series).toEqual([{ room, unit: "°C", points: [{ time: new Date(base).toISOString(), value: 20, count: 3 }] }]);
    const perDevice = await query({ metric: "temperature", room, device: a, ...range });
    expect(perDevice.series.map((s) => [s.device, s.points[0]?.value])).toEqual([[a, 21]]);
    const maxOfRoom = await query({ metric: "temperature", room, agg: "max", ...range });
    expect(maxOfRoom.series[0]?.points[0]?.value).toBe(22);
  });

  it("rolls up whole hours, answers the same from rollups, and keeps answering after raw retention pruned them", async () => {
    const device = uniqueId("roll");
    const now = Date.now();
    const base = hoursAgo(26, now);
    const values: [number, number][] = [];
    for (let minute = 0; minute < 3 * 60; minute += 7) values.push([minute, minute % 13]);
    await withStore((s) => s.write(readings(device, base, values)));
    const q = (bucket: { text: string; seconds: number }, agg: SeriesQuery["agg"] = "avg") =>
      query(
        {
          metric: "temperature",
          device,
          agg,
          bucket,
          start: new Date(base).toISOString(),
          end: new Date(base + 3 * HOUR_MS).toISOString(),
        },
        now,
      );
    const fromRaw = await Promise.all([
      q({ text: "1h", seconds: 3600 }),
      q({ text: "1h", seconds: 3600 }, "last"),
      q({ text: "3h", seconds: 10_800 }, "max"),
    ]);

    const result = await withStore((s) => s.rollup(now, now - 30 * DAY_MS));
    expect(result.rolledUntil).toBe(hoursAgo(0, now));
    expect((await withStore((s) => s.rollupState({ start: base, end: now }))).rolledUntil).toBeGreaterThanOrEqual(hoursAgo(0, now));
    const fromRollups = await Promise.all([
      q({ text: "1h", seconds: 3600 }),
      q({ text: "1h", seconds: 3600 }, "last"),
      q({ text: "3h", seconds: 10_800 }, "max"),
    ]);
    expect(fromRollups).toEqual(fromRaw);

    // Retention: raw readings of these hours gone, the rollups still answer hourly buckets.
    const deleted = await withStore((s) => s.prune({ raw: base + 3 * HOUR_MS, rollup: 0 }));
    expect(deleted.raw).toBeGreaterThanOrEqual(values.length);
    expect(await rowsPerMessage(device)).toEqual({});
    expect(await q({ text: "1h", seconds: 3600 })).toEqual(fromRaw[0]);
    const raw = await q({ text: "raw", seconds: 0 });
    expect(raw.series).toEqual([]);
  });

  it("serves day buckets from the daily rollup", async () => {
    const device = uniqueId("daily");
    const now = Date.now();
    const dayStart = Math.floor(now / DAY_MS) * DAY_MS - 2 * DAY_MS;
    await withStore((s) =>
      s.write(
        readings(device, dayStart, [
          [60, 1],
          [600, 3],
          [1500, 8],
        ]),
      ),
    );
    const q = () =>
      query(
        {
          metric: "temperature",
          device,
          agg: "sum",
          bucket: { text: "1d", seconds: 86_400 },
          start: new Date(dayStart).toISOString(),
          end: new Date(dayStart + 2 * DAY_MS).toISOString(),
        },
        now,
      );
    const before = await q();
    expect(before.series[0]?.points.map((p) => p.value)).toEqual([4, 8]);
    await withStore((s) => s.rollup(now, now - 30 * DAY_MS));
    await withStore((s) => s.prune({ raw: dayStart + 2 * DAY_MS, rollup: 0 }));
    expect(await q()).toEqual(before);
  });

  it("shows a late reading at once: hours written since the last rollup run are read raw", async () => {
    const device = uniqueId("late");
    const now = Date.now();
    const base = hoursAgo(3, now);
    await withStore((s) => s.write(readings(device, base, [[10, 10]])));
    await withStore((s) => s.rollup(now, now - 30 * DAY_MS));
    const hourly = () =>
      query(
        {
          metric: "temperature",
          device,
          agg: "count",
          bucket: { text: "1h", seconds: 3600 },
          start: new Date(base).toISOString(),
          end: new Date(base + HOUR_MS).toISOString(),
        },
        now,
      );
    expect((await hourly()).series[0]?.points[0]?.value).toBe(1);
    // An agent replays an outage: a reading for an hour that is rolled up already.
    await withStore((s) =>
      s.write(rowsOf(metric(`${device}-late`, device, { temperature: { value: 30, unit: "°C" } }, { time: base + 20 * 60_000 }))),
    );
    expect((await hourly()).series[0]?.points[0]?.value).toBe(2);
    await withStore((s) => s.rollup(now, now - 30 * DAY_MS));
    expect((await hourly()).series[0]?.points[0]?.value).toBe(2);
  });

  it("keeps the newest reading per device and metric, whatever order they arrive in", async () => {
    const device = uniqueId("latest");
    const t = hoursAgo(1);
    await withStore((s) => s.write(rowsOf(metric(`${device}-2`, device, { power_kw: 2, voltage: 231 }, { time: t + 2000 }))));
    await withStore((s) => s.write(rowsOf(metric(`${device}-1`, device, { power_kw: 1 }, { time: t + 1000 }))));
    const latest = await withStore((s) => s.latest({ device }));
    expect(latest.map((r) => [r.metric, r.value, r.time, r.message_id])).toEqual([
      ["power_kw", 2, t + 2000, `${device}-2`],
      ["voltage", 231, t + 2000, `${device}-2`],
    ]);
    expect(await withStore((s) => s.latest({ device, metrics: ["voltage"] }))).toHaveLength(1);
  });

  it("keeps seed 004's energy_readings, so its SQL keeps working", async () => {
    const device = uniqueId("meter");
    const time = Date.parse("2026-01-03T16:00:00Z");
    await withStore((s) =>
      s.write(
        rowsOf(
          metric(
            `${device}-1`,
            device,
            { total_energy_kwh: 12.45, power_kw: { value: 3200, unit: "W" }, voltage: 230, current: 13.9 },
            { time, routing_key: `metrics.sensors.energy.${device}` },
          ),
        ),
      ),
    );
    const rows = await seriesSql(
      (sql) =>
        sql`SELECT "timestamp", device_id, total_energy_kwh, power_kw, voltage, "current" FROM energy_readings WHERE device_id = ${device}`,
      async (db) => (await db.prepare("SELECT * FROM energy_readings WHERE device_id = ?").bind(device).all()).results,
    );
    expect(rows).toEqual([
      {
        timestamp: backend === "postgres" ? new Date(time) : "2026-01-03T16:00:00.000Z",
        device_id: device,
        total_energy_kwh: 12.45,
        power_kw: 3.2,
        voltage: 230,
        current: 13.9,
      },
    ]);
    if (backend === "postgres") {
      // The seed's Grafana panel and monitoring queries, verbatim (time_bucket is date_bin here).
      const panel = await seriesSql(
        (sql) => sql`SELECT
  time_bucket('1 hour', timestamp) AS hour,
  AVG(power_kw) AS avg_power
FROM energy_readings
WHERE timestamp > NOW() - INTERVAL '100000 hours'
GROUP BY hour
ORDER BY hour`,
        async () => [],
      );
      expect(panel).toContainEqual({ hour: new Date(time), avg_power: expect.any(Number) });
      const [count] = await seriesSql<Record<string, unknown>[]>(
        (sql) => sql`SELECT COUNT(*) FROM energy_readings WHERE timestamp > NOW() - INTERVAL '1 minute'`,
        async () => [],
      );
      expect(count).toHaveProperty("count");
    }
  });
});
