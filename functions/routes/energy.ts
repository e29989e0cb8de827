/**
 * Seed 004's energy API, answered from the series store: `GET /api/v1/energy/latest` and
 * `GET /api/v1/energy/hourly?start=&end=`. Rows use the names of seed 004's energy_readings
 * table and meter payload (`device_id`, `timestamp`, `total_energy_kwh`, `power_kw`, `voltage`,
 * `current`); docs/api.md gives the shapes and why.
 */
import { Hono } from "hono";
import { retentionCutoffs } from "../../platform/series/maintenance";
import type { EnergyHourlyRow, EnergyLatestRow } from "../../shared/schemas/api/energy";
import { EnergyHourlyQuery } from "../../shared/schemas/series";
import { readPartials } from "../../shared/series/query";
import type { PartialAggregate } from "../../shared/series/store";
import { ceilTo, DAY_MS, floorTo, HOUR_MS } from "../../shared/series/time";
import { ApiError } from "../errors";
import { type AppEnv, requireRole } from "../middleware/auth";
import { validate } from "../validate";
import { readSeries } from "./series";

/** The readings of seed 004's energy meter payload. */
export const ENERGY_METRICS = ["total_energy_kwh", "power_kw", "voltage", "current"] as const;
/** Longest range of one hourly call: a month of hours per meter. */
const MAX_HOURLY_DAYS = 31;

const iso = (ms: number) => new Date(ms).toISOString();
const round = (value: number, digits = 6) => Number.parseFloat(value.toFixed(digits));
/** The transformer normalizes kW to W; the seed's field is in kW. */
const toKw = (value: number, unit: string) => (unit === "W" ? value / 1000 : value);

export const energyRoutes = new Hono<AppEnv>()
  .use(requireRole("viewer"))
  .get("/latest", async (c) => {
    const rows = await readSeries(c.env, (store) => store.latest({ metrics: ENERGY_METRICS }));
    const meters = Map.groupBy(rows, (r) => r.device);
    const answer: EnergyLatestRow[] = [];
    for (const [device, readings] of meters) {
      const by = new Map(readings.map((r) => [r.metric, r]));
      // A meter measures energy or power; voltage and current alone are some other sensor.
      if (!by.has("total_energy_kwh") && !by.has("power_kw")) continue;
      const power = by.get("power_kw");
      answer.push({
        device_id: device,
        timestamp: iso(Math.max(...readings.map((r) => r.time))),
        total_energy_kwh: by.get("total_energy_kwh")?.value ?? null,
        power_kw: power ? round(toKw(power.value, power.unit)) : null,
        voltage: by.get("voltage")?.value ?? null,
        current: by.get("current")?.value ?? null,
      });
    }
    return c.json(answer);
  })
  .get("/hourly", validate("query", EnergyHourlyQuery), async (c) => {
    const q = c.req.valid("query");
    const end = ceilTo(q.end ? Date.parse(q.end) : Date.now(), HOUR_MS);
    const start = floorTo(q.start ? Date.parse(q.start) : end - DAY_MS, HOUR_MS);
    if (start >= end) throw ApiError.field("invalid_query", q.end ? "end" : "start", "start must be before end");
    if (end - start > MAX_HOURLY_DAYS * DAY_MS) throw ApiError.field("invalid_query", "start", `the range is over ${MAX_HOURLY_DAYS} days`);
    const query = (metric: string, from: number) => ({
      filter: { metric, device: q.device, group: "device" as const },
      range: { start: from, end },
      bucketMs: HOUR_MS,
      bucketText: "1h",
      agg: "avg" as const,
      limit: Number.MAX_SAFE_INTEGER,
      rawHorizon: retentionCutoffs(c.env, Date.now()).raw,
    });
    const [power, energy] = await readSeries(c.env, (store) =>
      // The hour before `start` too: its last counter value is where the first hour's energy starts.
      Promise.all([readPartials(store, query("power_kw", start)), readPartials(store, query("total_energy_kwh", start - HOUR_MS))]),
    );
    const key = (device: string | null, hour: number) => `${device}\u0000${hour}`;
    const energyAt = new Map(energy.map((p) => [key(p.group, p.bucket), p]));
    const powerAt = new Map(power.map((p) => [key(p.group, p.bucket), p]));
    const hours = new Map<string, { device: string; hour: number }>();
    for (const p of [...power, ...energy]) {
      if (p.bucket >= start && p.group !== null) hours.set(key(p.group, p.bucket), { device: p.group, hour: p.bucket });
    }
    const rows = [...hours.values()]
      .sort((a, b) => a.hour - b.hour || a.device.localeCompare(b.device))
      .map(({ device, hour }): EnergyHourlyRow => {
        const p = powerAt.get(key(device, hour));
        const e = energyAt.get(key(device, hour));
        return {
          hour: iso(hour),
          device_id: device,
          avg_power_kw: p ? round(toKw(p.sum / p.count, p.unit)) : null,
          energy_kwh: e ? round(energyUsed(e, energyAt.get(key(device, hour - HOUR_MS)))) : null,
          readings: Math.max(p?.count ?? 0, e?.count ?? 0),
        };
      });
    return c.json(rows);
  });

/**
 * Energy used in an hour from the meter's counter: from the last reading of the hour before to
 * the last of this one, so the energy between two hours is counted once; the hour's own
 * spread when the hour before has no reading or the counter went back (a meter reset).
 */
export function energyUsed(hour: PartialAggregate, before: PartialAggregate | undefined): number {
  if (before && hour.last_value >= before.last_value) return hour.last_value - before.last_value;
  return hour.max - hour.min;
}
