/**
 * The series sink on the metrics queues and the query API over it, end to end through ingest,
 * the transformer and the queues — against D1 in "workers", PostgreSQL in "workers-postgres".
 */
import { createExecutionContext, createMessageBatch, createScheduledController, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../../../functions/index";
import { consume } from "../../../queues/consumer";
import { series } from "../../../queues/consumers/series";
import { findQueue } from "../../../shared/bus/topology";
import { EnergyHourlyAnswer, EnergyLatestAnswer } from "../../../shared/schemas/api/energy";
import { rowsOf } from "../../../shared/series/rows";
import { DAY_MS, HOUR_MS } from "../../../shared/series/time";
import { ADMIN, call, createDevice, eventually, json, post, uniqueId } from "../helpers";
import { hoursAgo, label, metric, rowsPerMessage, withStore } from "./helpers";

const sensorsQueue = findQueue("metrics.sensors");
const systemQueue = findQueue("metrics.system");
if (!sensorsQueue || !systemQueue) throw new Error("topology lost the metrics queues");

interface SeriesBody {
  metric: string;
  agg: string;
  bucket: string;
  group: string;
  truncated: boolean;
  series: { device?: string; room?: string; unit: string; points: { time: string; value: number; count?: number }[] }[];
}
interface ErrorBody {
  error: { code: string; message: string; issues: { path: string; message: string }[] };
}

const get = (path: string) => call(path, { headers: ADMIN });
const room = () => uniqueId("room").replaceAll(/[^a-z0-9_-]/g, "-");

async function consumeOn(queueName: "metrics.sensors" | "metrics.system", messages: { id: string; attempts: number; body: unknown }[]) {
  const queue = queueName === "metrics.sensors" ? sensorsQueue : systemQueue;
  if (!queue) throw new Error("no queue");
  const batch = createMessageBatch(
    queue.cloudflare,
    messages.map((m) => ({ ...m, timestamp: new Date() })),
  );
  const ctx = createExecutionContext();
  await consume(batch, { env, queue }, series);
  return getQueueResult(batch, ctx);
}

describe(`the series sink (${label})`, () => {
  it("stores a sensor's readings from ingest in one hop, converted, under the message's id, with a stored step in the history", async () => {
    const where = room();
    const { device, token } = await createDevice({ id: uniqueId("thermo"), type: "temperature", room: where });
    const res = await post("/v1/telemetry", token, { id: "t-1", payload: { temperature: { value: 71.6, unit: "°F" }, battery: 78 } });
    expect(res.status).toBe(202);
    // One hop (issue 13): the sensor queue's consumer stores the reading under its own id.
    const stored = "t-1";
    expect(await eventually(async () => ((await rowsPerMessage(device.id))[stored] === 2 ? true : undefined), 15_000, "the rows")).toBe(
      true,
    );

    const raw = await json<SeriesBody>(await get(`/v1/series?metric=temperature&device=${device.id}&bucket=raw`));
    expect(raw.series).toEqual([{ device: device.id, unit: "°C", points: [{ time: expect.any(String), value: 22 }] }]);
    const byRoom = await json<SeriesBody>(await get(`/v1/series?metric=battery&room=${where}&bucket=1m`));
    expect(byRoom).toMatchObject({ group: "room", agg: "avg", series: [{ room: where, points: [{ value: 78, count: 1 }] }] });

    const history = await eventually(async () => {
      const body = await json<{ messages: { steps: { queue: string; status: string; detail: string }[] }[] }>(
        await get(`/v1/messages?id=${stored}`),
      );
      // The archiver records a stored step too (on archive.metrics); this is the series sink's.
      return body.messages[0]?.steps.find((s) => s.status === "stored" && s.queue === "sensors.temperature");
    });
    expect(history).toMatchObject({ queue: "sensors.temperature", detail: expect.stringContaining("2 readings") });
    expect(await rowsPerMessage(device.id)).toEqual({ "t-1": 2 });
  });

  it("stores nothing twice when a batch is redelivered, and acks both deliveries", async () => {
    const device = uniqueId("redeliver");
    const bodies = [1, 2, 3].map((i) => metric(`${device}-${i}`, device, { temperature: { value: 20 + i, unit: "°C" }, humidity: 40 }));
    const first = await consumeOn(
      "metrics.sensors",
      bodies.map((body, i) => ({ id: `q${i}`, attempts: 1, body })),
    );
    const again = await consumeOn(
      "metrics.sensors",
      bodies.map((body, i) => ({ id: `q${i}`, attempts: 2, body })),
    );
    expect(first.explicitAcks.sort()).toEqual(["q0", "q1", "q2"]);
    expect(again.explicitAcks.sort()).toEqual(["q0", "q1", "q2"]);
    expect(await rowsPerMessage(device)).toEqual({ [`${device}-1`]: 2, [`${device}-2`]: 2, [`${device}-3`]: 2 });
  });

  it("dead-letters a message on a metrics queue that carries no readings, and stores the rest of its batch", async () => {
    const device = uniqueId("mixed");
    const good = metric(`${device}-ok`, device, { cpu: 12 }, { routing_key: "metrics.system.nas" });
    const now = new Date().toISOString();
    const event = {
      ...good,
      id: `${device}-event`,
      correlation_id: `${device}-event`,
      type: "event",
      payload: { event_type: "state_changed" },
      timestamp: now,
    };
    const result = await consumeOn("metrics.system", [
      { id: "q1", attempts: 1, body: good },
      { id: "q2", attempts: 1, body: event },
    ]);
    expect(result.explicitAcks.sort()).toEqual(["q1", "q2"]);
    expect(result.retryMessages).toEqual([]);
    expect(await rowsPerMessage(device)).toEqual({ [`${device}-ok`]: 1 });
    const letter = await eventually(async () => {
      const body = await json<{ dead_letters: { message_id: string; error: { code: string } }[] }>(
        await get("/v1/dead-letters?queue=metrics.system&limit=1000"),
      );
      return body.dead_letters.find((d) => d.message_id === `${device}-event`);
    });
    expect(letter.error.code).toBe("not_readings");
  });

  it("stores a service's system metrics published on the metrics exchange, without a room, and answers their latest values", async () => {
    const { device, token } = await createDevice({
      id: uniqueId("nas"),
      type: "host",
      kind: "service",
      publish: ["metrics:metrics.system.#"],
    });
    const res = await post("/v1/exchanges/metrics/publish", token, [
      {
        routing_key: "metrics.system.nas",
        payload: { cpu_percent: 12.5, disk_ok: true },
        timestamp: new Date(Date.now() - 2000).toISOString(),
      },
      { routing_key: "metrics.system.nas", payload: { cpu_percent: 40 } },
    ]);
    expect(res.status).toBe(202);
    const latest = await eventually(async () => {
      const body = await json<{ readings: { device: string; metric: string; value: number; unit: string | null; room: string | null }[] }>(
        await get(`/v1/series/latest?device=${device.id}`),
      );
      return body.readings.length === 2 && body.readings[0]?.value === 40 ? body.readings : undefined;
    });
    expect(latest.map((r) => [r.metric, r.value, r.unit, r.room])).toEqual([
      ["cpu_percent", 40, null, null], // no unit is null in answers (the store keeps "")
      ["disk_ok", 1, "bool", null],
    ]);
  });

  it("rolls up and prunes on the hourly cron, and the API answers old hours from the rollups", async () => {
    const device = uniqueId("cron");
    const old = Math.floor((Date.now() - 40 * DAY_MS) / HOUR_MS) * HOUR_MS;
    const recent = hoursAgo(2);
    await withStore(async (s) => {
      await s.write([
        ...rowsOf(metric(`${device}-old1`, device, { temperature: { value: 10, unit: "°C" } }, { time: old + 60_000 })),
        ...rowsOf(metric(`${device}-old2`, device, { temperature: { value: 14, unit: "°C" } }, { time: old + 120_000 })),
        ...rowsOf(metric(`${device}-new`, device, { temperature: { value: 20, unit: "°C" } }, { time: recent + 60_000 })),
      ]);
      // Readings older than raw retention are rolled up only by a run that reaches back to them.
      await s.rollup(Date.now(), 0);
    });
    await worker.scheduled(createScheduledController({ scheduledTime: Date.now(), cron: "17 * * * *" }), env);
    expect(await rowsPerMessage(device)).toEqual({ [`${device}-new`]: 1 });
    const start = new Date(old).toISOString();
    const answer = await json<SeriesBody>(
      await get(`/v1/series?metric=temperature&device=${device}&bucket=1h&start=${start}&end=${new Date(old + HOUR_MS).toISOString()}`),
    );
    expect(answer.series[0]?.points).toEqual([{ time: start, value: 12, count: 2 }]);
    const daily = await json<SeriesBody>(await get(`/v1/series?metric=temperature&device=${device}&bucket=1d&agg=max&start=${start}`));
    expect(daily.series[0]?.points.map((p) => p.value)).toEqual([14, 20]);
  });
});

describe(`seed 004's energy API (${label})`, () => {
  it("answers the latest reading per meter and energy per hour, in the seed's names", async () => {
    const { device, token } = await createDevice({ id: uniqueId("meter"), type: "energy", room: "utility" });
    const h = hoursAgo(3);
    const reading = (minutes: number, total: number, power: number) => ({
      timestamp: new Date(h + minutes * 60_000).toISOString(),
      payload: { total_energy_kwh: total, power_kw: power, voltage: 230, current: Math.round((power * 1000 * 100) / 230) / 100 },
    });
    const res = await post("/v1/telemetry", token, [
      reading(10, 100, 2),
      reading(50, 101.5, 2.5),
      reading(70, 102.5, 3),
      reading(110, 104, 3.2),
      reading(130, 104.5, 0.5),
    ]);
    expect(res.status).toBe(202);
    await eventually(
      async () => (Object.keys(await rowsPerMessage(device.id)).length === 5 ? true : undefined),
      15_000,
      "the meter's rows",
    );

    const latest = EnergyLatestAnswer.parse(await json(await get("/api/v1/energy/latest")));
    expect(latest.find((r) => r.device_id === device.id)).toEqual({
      device_id: device.id,
      timestamp: new Date(h + 130 * 60_000).toISOString(),
      total_energy_kwh: 104.5,
      power_kw: 0.5,
      voltage: 230,
      current: 2.17,
    });

    const start = new Date(h).toISOString();
    const end = new Date(h + 3 * HOUR_MS).toISOString();
    const hourly = EnergyHourlyAnswer.parse(await json(await get(`/api/v1/energy/hourly?start=${start}&end=${end}&device=${device.id}`)));
    expect(hourly).toEqual([
      { hour: start, device_id: device.id, avg_power_kw: 2.25, energy_kwh: 1.5, readings: 2 },
      { hour: new Date(h + HOUR_MS).toISOString(), device_id: device.id, avg_power_kw: 3.1, energy_kwh: 2.5, readings: 2 },
      { hour: new Date(h + 2 * HOUR_MS).toISOString(), device_id: device.id, avg_power_kw: 0.5, energy_kwh: 0.5, readings: 1 },
    ]);
    // The same answer once the hours are rolled up.
    await withStore((s) => s.rollup(Date.now(), 0));
    expect(await json(await get(`/api/v1/energy/hourly?start=${start}&end=${end}&device=${device.id}`))).toEqual(hourly);
  });

  it("names a bad parameter", async () => {
    const res = await get("/api/v1/energy/hourly?start=yesterday");
    expect(res.status).toBe(400);
    expect(await json<ErrorBody>(res)).toMatchObject({ error: { code: "invalid_query", issues: [{ path: "start" }] } });
  });
});

describe("GET /v1/series: limits and errors", () => {
  const cases: [string, string][] = [
    ["metric", "/v1/series?device=x"],
    ["metric", "/v1/series?metric=Temperature"],
    ["agg", "/v1/series?metric=t&agg=median"],
    ["bucket", "/v1/series?metric=t&bucket=5 minutes"],
    ["bucket", "/v1/series?metric=t&bucket=1s&start=2026-01-01T00:00:00Z&end=2026-01-03T00:00:00Z"],
    ["start", "/v1/series?metric=t&start=yesterday"],
    ["end", "/v1/series?metric=t&start=2026-01-02T00:00:00Z&end=2026-01-01T00:00:00Z"],
    ["start", "/v1/series?metric=t&start=2000-01-01T00:00:00Z&end=2026-01-01T00:00:00Z"],
    ["limit", "/v1/series?metric=t&limit=1000000"],
    ["room", "/v1/series?metric=t&room=Living Room"],
    ["metrc", "/v1/series?metrc=t"],
  ];
  for (const [path, url] of cases) {
    it(`answers 400 invalid_query naming ${path} for ${url.slice("/v1/series".length)}`, async () => {
      const res = await get(url);
      expect(res.status).toBe(400);
      const body = await json<ErrorBody>(res);
      expect(body.error.code).toBe("invalid_query");
      expect(body.error.issues.map((i) => i.path)).toContain(path);
    });
  }

  it("takes the admin token", async () => {
    expect((await call("/v1/series?metric=t")).status).toBe(401);
    expect((await call("/api/v1/energy/latest")).status).toBe(401);
  });

  it("picks a bucket for the range when none is given, and says when raw readings were cut at the limit", async () => {
    const device = uniqueId("auto");
    const base = hoursAgo(1);
    await withStore((s) =>
      s.write([1, 2, 3].flatMap((i) => rowsOf(metric(`${device}-${i}`, device, { level: i }, { time: base + i * 1000 })))),
    );
    const auto = await json<SeriesBody>(await get(`/v1/series?metric=level&device=${device}`));
    expect(auto.bucket).toBe("5m");
    const cut = await json<SeriesBody>(await get(`/v1/series?metric=level&device=${device}&bucket=raw&limit=2`));
    expect(cut.truncated).toBe(true);
    expect(cut.series[0]?.points.map((p) => p.value)).toEqual([1, 2]);
  });
});
