/**
 * The agent's adapters (docs/devices.md) against a real Mosquitto and the local edge: for each of
 * Zigbee2MQTT, Tasmota, Shelly Gen2 and ESPHome, fixture messages written from the project's
 * documented formats go in as readings of an auto-provisioned device (its type inferred), and an
 * edgemesh command comes out on the topic and in the payload the project documents. Also seed
 * 004's meter and heat pump through the agent, and a user's own mapping file.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningAgent } from "../../agent/agent.ts";
import { parseConfig } from "../../agent/config.ts";
import { HA_COMPONENT_SCHEMAS } from "../../agent/ha-controls.ts";
import { type LocalEdge, startLocalEdge } from "../../scripts/lib/local-edge.ts";
import { type Mosquitto, startMosquitto } from "../../scripts/lib/mosquitto.ts";
import { lanClient, requireMosquitto, startSubscribedAgent, twinOf, until, writeAgentConfig } from "./agent-fixtures.ts";

const haveMosquitto = requireMosquitto();
const AGENT = "adapter-agent";

let edge: LocalEdge;
let broker: Mosquitto;
let lan: MqttClient;
let agent: RunningAgent;
let thermostatToken: string;

/** The edge-native thermostat speaks HTTPS with its own token. */
async function asThermostat<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(new URL(path, edge.url), {
    method,
    headers: { authorization: `Bearer ${thermostatToken}`, ...(body !== undefined && { "content-type": "application/json" }) },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: (await res.json().catch(() => ({}))) as T };
}

interface DeviceView {
  device: { id: string; type: string; name: string | null; metadata: Record<string, unknown> };
}

/** Messages the LAN client received on a topic, as text, in order. */
const received = new Map<string, string[]>();
async function watch(topic: string): Promise<void> {
  await lan.subscribeAsync(topic, { qos: 1 });
}
function messagesOn(topic: string): string[] {
  return received.get(topic) ?? [];
}

async function readingOf(device: string, name: string): Promise<unknown> {
  return until(async () => {
    const twin = await twinOf(edge, device).catch(() => undefined);
    return twin?.reported?.readings?.[name];
  }, `${name} of ${device}`);
}

async function command(device: string, name: string, parameters: Record<string, unknown>) {
  const sent = await edge.admin<{ command: { id: string; status: string; result?: unknown; error?: string } }>(
    "POST",
    `/v1/devices/${device}/commands`,
    { command: name, parameters, wait_s: 20 },
  );
  expect(sent.status, JSON.stringify(sent.body)).toBeLessThan(300);
  return sent.body.command;
}

beforeAll(async () => {
  if (!haveMosquitto) return;
  [edge, broker] = await Promise.all([startLocalEdge(), startMosquitto()]);
  const registered = await edge.admin<{ token: string }>("POST", "/v1/devices", {
    id: AGENT,
    kind: "service",
    type: "agent",
    metadata: { auto_provision: true },
  });
  expect(registered.status).toBe(201);
  // An edge-native thermostat (its own token, HTTPS), shown in Home Assistant through the agent.
  const thermostat = await edge.admin<{ token: string }>("POST", "/v1/devices", {
    id: "hall-thermostat",
    type: "thermostat",
    room: "hall",
    metadata: { homeassistant_agent: AGENT },
  });
  expect(thermostat.status).toBe(201);
  thermostatToken = thermostat.body.token;
  for (const [id, type] of [
    ["meter1", "energy"],
    ["heatpump", "heatpump"],
  ]) {
    const device = await edge.admin("POST", "/v1/devices", { id, type, room: "utility", metadata: { agent: AGENT } });
    expect(device.status).toBe(201);
  }
  lan = await lanClient(broker.url);
  lan.on("message", (topic, payload) => received.set(topic, [...(received.get(topic) ?? []), payload.toString("utf8")]));

  const { dir } = writeAgentConfig({ edgeUrl: edge.url, mqttUrl: broker.url, token: registered.body.token, clientId: "adapter-agent" });
  // A user's own mapping file, beside the built-in ones.
  writeFileSync(
    join(dir, "acme.yaml"),
    `ecosystem: acme
readings:
  - topic: acme/{device}/data
    format: json
    units: { flow: "l/min" }
commands:
  - command: "*"
    topic: acme/{device}/do/{command}
    format: json
    payload: { ref: "{id}", args: "{parameters}" }
types:
  - type: water
    any: [flow]
default_type: acme
`,
  );
  const text = `edge:
  url: ${edge.url}
  token_file: agent.token
  retry: { initial_ms: 50, max_ms: 500 }
outbox:
  path: outbox.db
mqtt:
  url: ${broker.url}
  client_id: adapter-agent
  rules:
    - topic: homelab/energy/+
      routing_key: sensors.energy.{1}
      device: "{1}"
    - topic: homelab/heatpump/#
      routing_key: sensors.heatpump.{#}
      device: heatpump
adapters:
  enabled: [zigbee2mqtt, tasmota, shelly, esphome]
  files: [acme.yaml]
  provision:
    allow: ["kitchen-*", "hall-*", "tasmota_*", "shellyplus1pm-*", "garage-node", "acme-*"]
homeassistant:
  discovery: true
  edge_devices: true
  edge_poll_s: 5
  controls:
    - device: hall-thermostat
      component: climate
      reading: setpoint
      current: temperature
      command: setpoint
      min: 5
      max: 30
      step: 0.5
    - device: garage-node
      component: switch
      reading: door_relay
      command: switch
      parameters: { entity: door_relay, state: "{value}" }
health:
  listen: 127.0.0.1:0
log:
  level: error
`;
  writeFileSync(join(dir, "agent.yaml"), text);
  agent = await startSubscribedAgent(parseConfig(text, dir));
}, 120_000);

afterAll(async () => {
  await agent?.stop();
  await lan?.endAsync();
  await Promise.all([edge?.stop(), broker?.stop()]);
});

describe.runIf(haveMosquitto)("the agent's adapters against Mosquitto and the local edge", () => {
  it("Zigbee2MQTT: a state JSON provisions the device with its type; availability reaches the twin; a command goes to <name>/set", async () => {
    await lan.publishAsync(
      "zigbee2mqtt/Kitchen Sensor",
      JSON.stringify({ temperature: 21.5, humidity: 45.2, pressure: 1012.3, battery: 97, linkquality: 120, voltage: 2995 }),
      { qos: 1 },
    );
    expect(await readingOf("kitchen-sensor", "temperature")).toMatchObject({ value: 21.5 });
    const { body } = await edge.admin<DeviceView>("GET", "/v1/devices/kitchen-sensor");
    expect(body.device).toMatchObject({
      type: "temperature",
      name: "Kitchen Sensor",
      metadata: { agent: AGENT, ecosystem: "zigbee2mqtt" },
    });
    expect(await readingOf("kitchen-sensor", "linkquality")).toMatchObject({ value: 120 });

    await lan.publishAsync("zigbee2mqtt/Kitchen Sensor/availability", JSON.stringify({ state: "offline" }), { qos: 1, retain: true });
    await until(async () => ((await twinOf(edge, "kitchen-sensor")).availability.status === "offline" ? true : undefined), "offline");

    await watch("zigbee2mqtt/Hall Plug/set");
    await lan.publishAsync("zigbee2mqtt/Hall Plug", JSON.stringify({ state: "ON", power: 12.5, energy: 1.23, linkquality: 100 }), {
      qos: 1,
    });
    expect(await readingOf("hall-plug", "state")).toMatchObject({ value: true });
    expect((await edge.admin<DeviceView>("GET", "/v1/devices/hall-plug")).body.device.type).toBe("energy");
    const done = await command("hall-plug", "set", { state: "OFF" });
    expect(done.status).toBe("succeeded");
    await until(() => (messagesOn("zigbee2mqtt/Hall Plug/set").length > 0 ? true : undefined), "the /set publish");
    expect(JSON.parse(messagesOn("zigbee2mqtt/Hall Plug/set")[0] as string)).toEqual({ state: "OFF" });
    // The device's answer is its new state: the loop closes through the readings.
    await lan.publishAsync("zigbee2mqtt/Hall Plug", JSON.stringify({ state: "OFF", power: 0, energy: 1.23 }), { qos: 1 });
    await until(async () => ((await twinOf(edge, "hall-plug")).reported.readings.state?.value === false ? true : undefined), "state OFF");
  });

  it("Zigbee2MQTT: a device the allow-list does not take is not provisioned, and nothing of it is stored", async () => {
    await lan.publishAsync("zigbee2mqtt/Attic Plug", JSON.stringify({ state: "ON", power: 3 }), { qos: 1 });
    await until(() => (agent.adapters?.devices.has("attic-plug") ? true : undefined), "the agent saw it");
    await new Promise((r) => setTimeout(r, 1000));
    expect((await edge.admin("GET", "/v1/devices/attic-plug")).status).toBe(404);
  });

  it("Tasmota: tele/<t>/SENSOR energy JSON and stat/<t>/POWER in, LWT to availability, power out on cmnd/<t>/POWER", async () => {
    const sensor = {
      Time: "2024-02-24T22:20:38",
      ENERGY: {
        TotalStartTime: "2024-01-01T00:00:00",
        Total: 12.345,
        Yesterday: 0.5,
        Today: 0.2,
        Power: 45,
        ApparentPower: 50,
        ReactivePower: 20,
        Factor: 0.9,
        Voltage: 231,
        Current: 0.195,
      },
    };
    await lan.publishAsync("tele/tasmota_A1B2C3/SENSOR", JSON.stringify(sensor), { qos: 1 });
    expect(await readingOf("tasmota_a1b2c3", "energy_power")).toMatchObject({ value: 45 });
    expect(await readingOf("tasmota_a1b2c3", "energy_total")).toMatchObject({ value: 12.345 });
    expect((await edge.admin<DeviceView>("GET", "/v1/devices/tasmota_a1b2c3")).body.device.type).toBe("energy");

    await lan.publishAsync("tele/tasmota_A1B2C3/LWT", "Offline", { qos: 1, retain: true });
    await until(async () => ((await twinOf(edge, "tasmota_a1b2c3")).availability.status === "offline" ? true : undefined), "LWT offline");
    await lan.publishAsync("tele/tasmota_A1B2C3/LWT", "Online", { qos: 1, retain: true });
    await until(async () => ((await twinOf(edge, "tasmota_a1b2c3")).availability.status === "online" ? true : undefined), "LWT online");

    await watch("cmnd/tasmota_A1B2C3/POWER");
    expect((await command("tasmota_a1b2c3", "power", { state: "OFF" })).status).toBe("succeeded");
    await until(() => (messagesOn("cmnd/tasmota_A1B2C3/POWER").length > 0 ? true : undefined), "cmnd POWER");
    expect(messagesOn("cmnd/tasmota_A1B2C3/POWER")).toEqual(["OFF"]);
    await lan.publishAsync("stat/tasmota_A1B2C3/POWER", "OFF", { qos: 1 });
    await until(
      async () => ((await twinOf(edge, "tasmota_a1b2c3")).reported.readings.power?.value === false ? true : undefined),
      "POWER OFF",
    );
    // A command whose parameters the mapping needs but lacks fails with the reason.
    const failed = await command("tasmota_a1b2c3", "power", {});
    expect(failed).toMatchObject({ status: "failed", error: expect.stringContaining("parameters.state") });
  });

  it("Shelly Gen2: NotifyStatus on <id>/events/rpc in, at its ts; Switch.Set out as an RPC frame on <id>/rpc", async () => {
    const id = "shellyplus1pm-a8032ab12345";
    const ts = Math.floor(Date.now() / 1000) - 120;
    const notify = {
      src: id,
      dst: `${id}/events`,
      method: "NotifyStatus",
      params: {
        ts: ts + 0.43,
        "switch:0": {
          id: 0,
          apower: 23.4,
          voltage: 230.1,
          current: 0.11,
          output: true,
          aenergy: { total: 1234.5, by_minute: [1.1, 2.2, 3.3], minute_ts: ts },
          temperature: { tC: 41.2, tF: 106.2 },
        },
      },
    };
    await lan.publishAsync(`${id}/events/rpc`, JSON.stringify(notify), { qos: 1 });
    expect(await readingOf(id, "switch_0_apower")).toMatchObject({ value: 23.4 });
    // Wh becomes kWh at the edge: the units table.
    expect(await readingOf(id, "switch_0_aenergy_total")).toMatchObject({ value: 1.2345 });
    const twin = await twinOf(edge, id);
    expect(Object.keys(twin.reported.readings)).not.toContain("switch_0_id");
    expect((await edge.admin<DeviceView>("GET", `/v1/devices/${id}`)).body.device.type).toBe("energy");
    // The history row is the consumer's (issue 13): it lands once the message is consumed.
    const at = new Date((ts + 0.43) * 1000).toISOString();
    await until(async () => {
      const { body } = await edge.admin<{ messages: { timestamp: string; routing_key: string }[] }>("GET", `/v1/messages?device=${id}`);
      return body.messages.some((m) => m.timestamp === at) ? true : undefined;
    }, "the reading at the Shelly's ts in the history");

    await watch(`${id}/rpc`);
    expect((await command(id, "switch_set", { id: 0, on: false })).status).toBe("succeeded");
    await until(() => (messagesOn(`${id}/rpc`).length > 0 ? true : undefined), "the RPC frame");
    const frame = JSON.parse(messagesOn(`${id}/rpc`)[0] as string) as Record<string, unknown>;
    expect(frame).toEqual({ id: expect.any(Number), src: AGENT, method: "Switch.Set", params: { id: 0, on: false } });
  });

  it("ESPHome: <node>/sensor/<name>/state and switch state in, <node>/status to availability, switch out on <node>/switch/<name>/command", async () => {
    await lan.publishAsync("garage-node/status", "online", { qos: 1, retain: true });
    await lan.publishAsync("garage-node/sensor/garage_temperature/state", "18.4", { qos: 1 });
    expect(await readingOf("garage-node", "garage_temperature")).toMatchObject({ value: 18.4 });
    expect((await edge.admin<DeviceView>("GET", "/v1/devices/garage-node")).body.device.type).toBe("temperature");

    await watch("garage-node/switch/door_relay/command");
    expect((await command("garage-node", "switch", { entity: "door_relay", state: "ON" })).status).toBe("succeeded");
    await until(() => (messagesOn("garage-node/switch/door_relay/command").length > 0 ? true : undefined), "the switch command");
    expect(messagesOn("garage-node/switch/door_relay/command")).toEqual(["ON"]);
    await lan.publishAsync("garage-node/switch/door_relay/state", "ON", { qos: 1 });
    expect(await readingOf("garage-node", "door_relay")).toMatchObject({ value: true });
    await lan.publishAsync("garage-node/status", "offline", { qos: 1, retain: true });
    await until(async () => ((await twinOf(edge, "garage-node")).availability.status === "offline" ? true : undefined), "status offline");
  });

  it("a user's own mapping file works as the built-in ones do", async () => {
    await watch("acme/acme-pump/do/start");
    await lan.publishAsync("acme/acme-pump/data", JSON.stringify({ flow: 12, running: true }), { qos: 1 });
    // l/min becomes m³/h at the edge.
    expect(await readingOf("acme-pump", "flow")).toMatchObject({ value: 0.72 });
    expect((await edge.admin<DeviceView>("GET", "/v1/devices/acme-pump")).body.device.type).toBe("water");
    const done = await command("acme-pump", "start", { speed: 3 });
    await until(() => (messagesOn("acme/acme-pump/do/start").length > 0 ? true : undefined), "the acme command");
    expect(JSON.parse(messagesOn("acme/acme-pump/do/start")[0] as string)).toEqual({ ref: done.id, args: { speed: 3 } });
  });

  it("Home Assistant: a switch toggled through its command topic reaches the device as an edgemesh command, and its state comes back", async () => {
    // Discovery as Home Assistant reads it: retained, from a fresh subscriber.
    const ha = await lanClient(broker.url, "home-assistant");
    const retained = new Map<string, string>();
    ha.on("message", (topic, payload) => retained.set(topic, payload.toString("utf8")));
    try {
      await ha.subscribeAsync(["homeassistant/#", "edgemesh/+/state"], { qos: 1 });
      const configTopic = "homeassistant/switch/hall-plug/state/config";
      await until(() => retained.get(configTopic), "the switch's discovery config");
      const config = HA_COMPONENT_SCHEMAS.switch.parse(JSON.parse(retained.get(configTopic) as string));
      expect(config).toMatchObject({ command_topic: "edgemesh/hall-plug/state/set", state_topic: "edgemesh/hall-plug/state" });
      // The reading a control stands for is no read-only sensor too; a number stays a sensor.
      expect(retained.has("homeassistant/sensor/hall-plug/state/config")).toBe(false);
      expect(retained.has("homeassistant/sensor/hall-plug/power/config")).toBe(true);

      // Home Assistant turns it on: its command topic, ON.
      await watch("zigbee2mqtt/Hall Plug/set");
      const before = messagesOn("zigbee2mqtt/Hall Plug/set").length;
      await ha.publishAsync(config.command_topic, config.payload_on, { qos: 1 });
      await until(() => (messagesOn("zigbee2mqtt/Hall Plug/set").length > before ? true : undefined), "the command at the device");
      expect(JSON.parse(messagesOn("zigbee2mqtt/Hall Plug/set")[before] as string)).toEqual({ state: "ON" });
      // It went through the edge: a command of the device's twin, succeeded.
      const commands = await edge.admin<{ commands: { command: string; parameters: unknown; status: string }[] }>(
        "GET",
        "/v1/devices/hall-plug/commands",
      );
      expect(commands.body.commands).toContainEqual(expect.objectContaining({ command: "set", parameters: { state: "ON" } }));

      // The device reports its state; Home Assistant's state topic follows.
      await lan.publishAsync("zigbee2mqtt/Hall Plug", JSON.stringify({ state: "ON", power: 11.9 }), { qos: 1 });
      await until(() => (JSON.parse(retained.get("edgemesh/hall-plug/state") ?? "{}").state === true ? true : undefined), "state ON");

      // A control from the agent config: the ESPHome relay.
      const relay = HA_COMPONENT_SCHEMAS.switch.parse(
        JSON.parse(await until(() => retained.get("homeassistant/switch/garage-node/door_relay/config"), "the relay's config")),
      );
      await watch("garage-node/switch/door_relay/command");
      const sent = messagesOn("garage-node/switch/door_relay/command").length;
      await ha.publishAsync(relay.command_topic, "OFF", { qos: 1 });
      await until(() => (messagesOn("garage-node/switch/door_relay/command").length > sent ? true : undefined), "the relay command");
      expect(messagesOn("garage-node/switch/door_relay/command").at(-1)).toBe("OFF");
    } finally {
      await ha.endAsync();
    }
  });

  it("Home Assistant: an edge-native thermostat appears as a climate entity; a new target temperature reaches it as a command and comes back", async () => {
    expect(
      (await asThermostat("POST", "/v1/telemetry", { payload: { temperature: { value: 19.5, unit: "°C" }, setpoint: 20 } })).status,
    ).toBe(202);
    const ha = await lanClient(broker.url, "home-assistant-2");
    const retained = new Map<string, string>();
    ha.on("message", (topic, payload) => retained.set(topic, payload.toString("utf8")));
    try {
      await ha.subscribeAsync(["homeassistant/#", "edgemesh/hall-thermostat/#"], { qos: 1 });
      const climate = HA_COMPONENT_SCHEMAS.climate.parse(
        JSON.parse(await until(() => retained.get("homeassistant/climate/hall-thermostat/setpoint/config"), "the climate config", 20_000)),
      );
      expect(climate).toMatchObject({ current_temperature_template: "{{ value_json.temperature }}", min_temp: 5, max_temp: 30 });
      expect(retained.has("homeassistant/sensor/hall-thermostat/temperature/config")).toBe(true);
      expect(JSON.parse(retained.get("edgemesh/hall-thermostat/state") ?? "{}")).toEqual({ temperature: 19.5, setpoint: 20 });

      await ha.publishAsync(climate.temperature_command_topic, "22.5", { qos: 1 });
      // The thermostat polls its commands over HTTPS, answers, and reports its new setpoint.
      const command = await until(async () => {
        const { body } = await asThermostat<{ commands: { id: string; command: string; parameters: unknown }[] }>(
          "GET",
          "/v1/device/commands",
        );
        return body.commands[0];
      }, "the command at the thermostat");
      expect(command).toMatchObject({ command: "setpoint", parameters: { value: 22.5 } });
      expect((await asThermostat("POST", `/v1/device/commands/${command.id}/result`, { status: "succeeded" })).status).toBeLessThan(300);
      expect((await asThermostat("POST", "/v1/telemetry", { payload: { setpoint: 22.5 } })).status).toBe(202);
      await until(
        () => (JSON.parse(retained.get("edgemesh/hall-thermostat/state") ?? "{}").setpoint === 22.5 ? true : undefined),
        "the new setpoint in Home Assistant's state topic",
        20_000,
      );
      // Out of the control's range: refused at the agent, nothing queued.
      await ha.publishAsync(climate.temperature_command_topic, "45", { qos: 1 });
      await new Promise((r) => setTimeout(r, 500));
      const { body } = await asThermostat<{ commands: unknown[] }>("GET", "/v1/device/commands");
      expect(body.commands).toEqual([]);
    } finally {
      await ha.endAsync();
    }
  });

  it("seed 004 through the agent: the meter and the heat pump, verbatim, reach the series store and the energy API", async () => {
    const at = new Date(Math.floor(Date.now() / 60_000) * 60_000 - 10 * 60_000).toISOString();
    await lan.publishAsync(
      "homelab/energy/meter1",
      `{"timestamp": "${at}", "total_energy_kwh": 12.45, "power_kw": 3.2, "voltage": 230, "current": 13.9}`,
      { qos: 1 },
    );
    await lan.publishAsync(
      "homelab/heatpump/outdoor_unit",
      JSON.stringify({ timestamp: at, total_energy_kwh: 812.3, power_kw: 1.35, flow_temperature: 35.5, cop: 3.9 }),
      { qos: 1 },
    );
    const latest = await until(async () => {
      const rows = (await edge.admin<Record<string, unknown>[]>("GET", "/api/v1/energy/latest")).body;
      const meter = rows.find((r) => r.device_id === "meter1");
      const pump = rows.find((r) => r.device_id === "heatpump");
      return meter && pump ? { meter, pump } : undefined;
    }, "both in /api/v1/energy/latest");
    expect(latest.meter).toEqual({
      device_id: "meter1",
      timestamp: at,
      total_energy_kwh: 12.45,
      power_kw: 3.2,
      voltage: 230,
      current: 13.9,
    });
    expect(latest.pump).toMatchObject({ timestamp: at, total_energy_kwh: 812.3, power_kw: 1.35 });
    const cop = await edge.admin<{ series: { points: { time: string; value: number }[] }[] }>(
      "GET",
      "/v1/series?metric=cop&device=heatpump&bucket=raw",
    );
    expect(cop.body.series[0]?.points).toEqual([{ time: at, value: 3.9 }]);
    const letters = await edge.admin<{ dead_letters: unknown[] }>("GET", "/v1/dead-letters?status=pending&limit=1000");
    expect(JSON.stringify(letters.body.dead_letters)).not.toContain("heatpump");
  });
});
