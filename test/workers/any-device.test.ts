/**
 * Every reading finds a home (issue 16): a device of a type the project has never heard of, and
 * seed 004's meter and heat pump with their JSON as the seed shows it (`timestamp` inside the
 * payload), over HTTPS and MQTT 3.1.1 and 5 — to the series store, the energy API and the
 * archive, and nothing of it dead-lettered.
 */
import { describe, expect, it } from "vitest";
import { REASON } from "../../shared/mqtt";
import { ADMIN, call, createDevice, eventually, json, post, uniqueId } from "./helpers";
import { connectPacket, open, publish, type V } from "./mqtt-harness";

/** Seed 004's meter payload, verbatim but for the date: the seed's own is older than MAX_MESSAGE_AGE_DAYS. */
function seedMeterPayload(timestamp: string) {
  return JSON.parse(`{"timestamp": "${timestamp}", "total_energy_kwh": 12.45, "power_kw": 3.2, "voltage": 230, "current": 13.9}`) as Record<
    string,
    unknown
  >;
}

/** A heat pump's payload in the same shape (seed 004 names its topic, not its fields). */
function heatPumpPayload(timestamp: string) {
  return { timestamp, total_energy_kwh: 812.3, power_kw: 1.35, flow_temperature: 35.5, cop: 3.9 };
}

const get = (path: string) => call(path, { headers: ADMIN });

/** A whole minute a few hours back: each call a different one, so tests do not share a reading time. */
let minutesBack = 60 + Math.floor(Math.random() * 600);
function pastMinute(): string {
  minutesBack += 1;
  return new Date((Math.floor(Date.now() / 60_000) - minutesBack) * 60_000).toISOString();
}

interface SeriesBody {
  series: { device?: string; unit: string; points: { time: string; value: number }[] }[];
}

async function rawPoints(metric: string, device: string) {
  return eventually(
    async () => {
      const body = await json<SeriesBody>(await get(`/v1/series?metric=${metric}&device=${device}&bucket=raw`));
      return body.series[0]?.points.length ? body.series[0] : undefined;
    },
    20_000,
    `${metric} of ${device} in the series store`,
  );
}

async function deadLettersOf(device: string): Promise<unknown[]> {
  const body = await json<{ dead_letters: { message_id: string; source?: string; message?: { source: string } }[] }>(
    await get("/v1/dead-letters?status=pending&limit=1000"),
  );
  return body.dead_letters.filter((d) => JSON.stringify(d).includes(device));
}

async function steps(id: string) {
  const body = await json<{ messages: { steps: { queue: string; status: string }[] }[] }>(await get(`/v1/messages?id=${id}`));
  return body.messages[0]?.steps ?? [];
}

describe("a device of a type nobody has heard of", () => {
  it("posts over HTTPS; its readings are routed to sensors.other, stored, on the series API and archived, none dead-lettered", async () => {
    const { device, token } = await createDevice({ id: uniqueId("co2"), type: "co2meter", room: "office" });
    const id = uniqueId("r");
    const res = await post("/v1/telemetry", token, {
      id,
      payload: { co2: { value: 612, unit: "ppm" }, pressure: { value: 101.3, unit: "kPa" } },
    });
    expect(res.status, await res.clone().text()).toBe(202);
    expect((await json<{ routed: Record<string, string[]> }>(res)).routed[id]).toEqual(["sensors.other", "archive.metrics"]);

    const co2 = await rawPoints("co2", device.id);
    expect(co2).toMatchObject({ unit: "ppm", points: [{ value: 612 }] });
    // Canonical units apply to any type: kPa becomes hPa.
    expect(await rawPoints("pressure", device.id)).toMatchObject({ unit: "hPa", points: [{ value: 1013 }] });

    // Archived as it was accepted (issue 13: from ingest, packed by the twin), under its own id.
    const archived = await eventually(
      async () => (await steps(id)).find((s) => s.queue === "archive.metrics" && s.status === "stored"),
      15_000,
      "the archived copy",
    );
    expect(archived).toBeDefined();
    expect(await deadLettersOf(device.id)).toEqual([]);
  }, 20_000);
});

describe("seed 004's JSON, verbatim", () => {
  it("HTTPS: the meter's payload with its timestamp inside is stored at that time and answers the energy API", async () => {
    const { device, token } = await createDevice({ id: uniqueId("meter"), type: "energy", room: "garage" });
    const at = pastMinute();
    const res = await post("/v1/telemetry", token, { payload: seedMeterPayload(at) });
    expect(res.status, await res.clone().text()).toBe(202);
    const power = await rawPoints("power_kw", device.id);
    // A bare number keeps its name's unit (kW here); the energy API reads it as the seed does.
    expect(power.points).toEqual([{ time: at, value: 3.2 }]);
    const latest = await eventually(
      async () => (await json<Record<string, unknown>[]>(await get("/api/v1/energy/latest"))).find((r) => r.device_id === device.id),
      10_000,
      "the meter in /api/v1/energy/latest",
    );
    expect(latest).toEqual({ device_id: device.id, timestamp: at, total_energy_kwh: 12.45, power_kw: 3.2, voltage: 230, current: 13.9 });
    expect(await deadLettersOf(device.id)).toEqual([]);
  });

  it("HTTPS: a timestamp inside the payload that is no date, or differs from the envelope's, is refused naming the field", async () => {
    const { token } = await createDevice({ id: uniqueId("meter"), type: "energy" });
    const bad = await post("/v1/telemetry", token, { payload: { timestamp: "yesterday", power_kw: 1 } });
    expect(bad.status).toBe(400);
    expect(await json(bad)).toMatchObject({ error: { code: "invalid_payload", issues: [{ path: "payload.timestamp" }] } });
    const at = pastMinute();
    const differs = await post("/v1/telemetry", token, { timestamp: new Date().toISOString(), payload: seedMeterPayload(at) });
    expect(differs.status).toBe(400);
    expect(await json(differs)).toMatchObject({ error: { code: "invalid_payload", issues: [{ path: "payload.timestamp" }] } });
  });

  for (const version of [4, 5] as V[]) {
    it(`MQTT ${version === 4 ? "3.1.1" : "5"}: homelab/energy/<meter> and homelab/heatpump/<name> with the seed's payloads reach the series store and the energy API`, async () => {
      const meter = await createDevice({ id: uniqueId("meter"), type: "energy", room: "garage" });
      const meterAt = pastMinute();
      const client = await open(meter.device.id, version);
      client.send(connectPacket(meter.device.id, meter.token, version));
      await client.next("connack");
      client.send(publish(`homelab/energy/${meter.device.id}`, seedMeterPayload(meterAt), 1, 1));
      const ack = (await client.next("puback")) as { reasonCode?: number };
      expect(ack.reasonCode ?? 0).toBe(REASON.success);

      const pump = await createDevice({ id: uniqueId("heatpump"), type: "heatpump", room: "utility" });
      const pumpAt = pastMinute();
      const pumpClient = await open(pump.device.id, version);
      pumpClient.send(connectPacket(pump.device.id, pump.token, version));
      await pumpClient.next("connack");
      pumpClient.send(publish("homelab/heatpump/outdoor_unit", heatPumpPayload(pumpAt), 1, 7));
      expect(((await pumpClient.next("puback")) as { reasonCode?: number }).reasonCode ?? 0).toBe(REASON.success);

      expect((await rawPoints("total_energy_kwh", meter.device.id)).points).toEqual([{ time: meterAt, value: 12.45 }]);
      expect((await rawPoints("cop", pump.device.id)).points).toEqual([{ time: pumpAt, value: 3.9 }]);
      const latest = await eventually(
        async () => {
          const rows = await json<Record<string, unknown>[]>(await get("/api/v1/energy/latest"));
          const m = rows.find((r) => r.device_id === meter.device.id);
          const p = rows.find((r) => r.device_id === pump.device.id);
          return m && p ? { m, p } : undefined;
        },
        10_000,
        "both in /api/v1/energy/latest",
      );
      expect(latest.m).toMatchObject({ timestamp: meterAt, total_energy_kwh: 12.45, power_kw: 3.2 });
      expect(latest.p).toMatchObject({ timestamp: pumpAt, total_energy_kwh: 812.3, power_kw: 1.35 });
      expect(client.isClosed()).toBe(false);
      expect(await deadLettersOf(meter.device.id)).toEqual([]);
      expect(await deadLettersOf(pump.device.id)).toEqual([]);
      client.ws.close();
      pumpClient.ws.close();
    });
  }
});
