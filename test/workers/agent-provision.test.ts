/**
 * The agent routes of issue 16 inside workerd: auto-provisioning (POST /v1/agent/devices), a
 * command from the LAN (POST /v1/agent/devices/:id/commands) and the edge-native devices shown in
 * Home Assistant (GET /v1/agent/homeassistant/devices) — each only within what an admin allowed.
 */
import { describe, expect, it } from "vitest";
import { ADMIN, call, createDevice, json, post, uniqueId } from "./helpers";

const get = (path: string, token: string) => call(path, { headers: { authorization: `Bearer ${token}` } });

describe("agent auto-provisioning", () => {
  it("is refused to an agent an admin did not allow it", async () => {
    const agent = await createDevice({ id: uniqueId("agent"), kind: "service", type: "agent" });
    const res = await post("/v1/agent/devices", agent.token, { id: uniqueId("plug"), type: "switch" });
    expect(res.status).toBe(403);
    expect(await json(res)).toMatchObject({ error: { code: "forbidden" } });
  });

  it("registers a device bridged by the agent once, answers the same again, and never takes another's device", async () => {
    const agent = await createDevice({ id: uniqueId("agent"), kind: "service", type: "agent", metadata: { auto_provision: true } });
    const id = uniqueId("plug");
    const first = await post("/v1/agent/devices", agent.token, { id, type: "switch", name: "Hall Plug", ecosystem: "zigbee2mqtt" });
    expect(first.status, await first.clone().text()).toBe(201);
    const created = await json<{
      device: { id: string; type: string; kind: string; metadata: Record<string, unknown>; publish: string[] };
    }>(first);
    expect(created.device).toMatchObject({
      id,
      type: "switch",
      kind: "device",
      metadata: { agent: agent.device.id, provisioned: "auto", ecosystem: "zigbee2mqtt" },
      publish: ["sensors:sensors.switch.*", `home.events:home.*.${id}.*`],
    });
    expect(created).not.toHaveProperty("token");
    const again = await post("/v1/agent/devices", agent.token, { id, type: "switch" });
    expect(again.status).toBe(200);
    expect(await json(again)).toMatchObject({ created: false });

    // The agent now carries it: a message for it is stored.
    const sent = await post("/v1/agent/messages", agent.token, { messages: [{ device: id, payload: { state: true } }] });
    expect(await json(sent)).toMatchObject({ results: [{ status: "stored" }] });

    const someoneElses = await createDevice({ id: uniqueId("meter"), type: "energy" });
    const taken = await post("/v1/agent/devices", agent.token, { id: someoneElses.device.id, type: "energy" });
    expect(taken.status).toBe(409);
  });

  it("names the field at fault", async () => {
    const agent = await createDevice({ id: uniqueId("agent"), kind: "service", type: "agent", metadata: { auto_provision: true } });
    const res = await post("/v1/agent/devices", agent.token, { id: "Not An Id", type: "switch" });
    expect(res.status).toBe(400);
    expect(await json(res)).toMatchObject({ error: { issues: [{ path: "id" }] } });
    const extra = await post("/v1/agent/devices", agent.token, { id: uniqueId("x"), type: "switch", kind: "service" });
    expect(extra.status).toBe(400);
  });
});

describe("commands from the LAN and Home Assistant's edge-native devices", () => {
  it("queues a command for a bridged or shown device, and refuses any other", async () => {
    const agent = await createDevice({ id: uniqueId("agent"), kind: "service", type: "agent" });
    const bridged = await createDevice({ id: uniqueId("plug"), type: "switch", metadata: { agent: agent.device.id } });
    const shown = await createDevice({
      id: uniqueId("thermo"),
      type: "thermostat",
      room: "hall",
      metadata: { homeassistant_agent: agent.device.id },
    });
    const other = await createDevice({ id: uniqueId("plug"), type: "switch" });

    for (const device of [bridged, shown]) {
      const res = await post(`/v1/agent/devices/${device.device.id}/commands`, agent.token, {
        command: "set",
        parameters: { state: "ON" },
      });
      expect(res.status, await res.clone().text()).toBe(202);
      const listed = await json<{ commands: { command: string; status: string }[] }>(
        await call(`/v1/devices/${device.device.id}/commands`, { headers: ADMIN }),
      );
      expect(listed.commands).toContainEqual(expect.objectContaining({ command: "set", status: "queued" }));
    }
    const refused = await post(`/v1/agent/devices/${other.device.id}/commands`, agent.token, { command: "set" });
    expect(refused.status).toBe(403);
    const bad = await post(`/v1/agent/devices/${bridged.device.id}/commands`, agent.token, { command: "Set Now" });
    expect(bad.status).toBe(400);

    expect((await post("/v1/telemetry", shown.token, { payload: { temperature: 19.5, setpoint: 20 } })).status).toBe(202);
    const list = await json<{
      devices: { id: string; type: string; room?: string; availability: string; readings: Record<string, { value: unknown }> }[];
    }>(await get("/v1/agent/homeassistant/devices", agent.token));
    expect(list.devices).toHaveLength(1);
    expect(list.devices[0]).toMatchObject({
      id: shown.device.id,
      type: "thermostat",
      room: "hall",
      availability: "online",
      readings: { temperature: { value: 19.5 }, setpoint: { value: 20 } },
    });
    expect((await get("/v1/agent/homeassistant/devices", shown.token)).status).toBe(403);
  });
});
