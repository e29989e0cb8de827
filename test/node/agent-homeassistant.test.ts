/**
 * The agent and Home Assistant on a real Mosquitto, with the local edge: discovery configs
 * (retained, checked against Home Assistant's sensor schema), state and availability for a
 * bridged device; Home Assistant's statestream into a twin; its eventstream into edge events.
 */
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningAgent } from "../../agent/agent.ts";
import { HaSensorConfig } from "../../agent/ha-discovery.ts";
import { type LocalEdge, startLocalEdge } from "../../scripts/lib/local-edge.ts";
import { type Mosquitto, startMosquitto } from "../../scripts/lib/mosquitto.ts";
import {
  lanClient,
  meterReading,
  registerAgent,
  requireMosquitto,
  startSubscribedAgent,
  stopAll,
  twinOf,
  until,
  writeAgentConfig,
} from "./agent-fixtures.ts";

const haveMosquitto = requireMosquitto();
const AGENT = "ha-agent";

let edge: LocalEdge;
let broker: Mosquitto;
let agent: RunningAgent;
let lan: MqttClient;

/** Everything a client subscribed to `filters` receives, by topic (the last payload), retained or not. */
async function listen(filters: string[]): Promise<{ client: MqttClient; seen: Map<string, { payload: string; retain: boolean }> }> {
  const client = await lanClient(broker.url);
  const seen = new Map<string, { payload: string; retain: boolean }>();
  client.on("message", (topic, payload, packet) => seen.set(topic, { payload: payload.toString(), retain: packet.retain }));
  await client.subscribeAsync(filters, { qos: 1 });
  return { client, seen };
}

beforeAll(async () => {
  if (!haveMosquitto) return;
  [edge, broker] = await Promise.all([startLocalEdge(), startMosquitto()]);
  const token = await registerAgent(edge, AGENT, ["hpump"]);
  for (const id of ["ha-living", "home-assistant"]) {
    const made = await edge.admin("POST", "/v1/devices", { id, type: "homeassistant", room: "living", metadata: { agent: AGENT } });
    expect(made.status).toBe(201);
  }
  const { config } = writeAgentConfig({
    edgeUrl: edge.url,
    mqttUrl: broker.url,
    token,
    clientId: "ha-agent-client",
    extra: `homeassistant:
  discovery: true
  statestream:
    base_topic: homeassistant/statestream
    entities:
      - { entity_id: sensor.living_room_temperature, device: ha-living, reading: temperature }
  eventstream:
    topic: homeassistant/events
    device: home-assistant
    room: living
`,
  });
  agent = await startSubscribedAgent(config);
  lan = await lanClient(broker.url);
});

afterAll(() => stopAll(agent, lan, edge, broker));

describe.runIf(haveMosquitto)("the agent and Home Assistant on a real Mosquitto", () => {
  it("a bridged device appears through MQTT discovery: retained sensor configs, its state and availability", async () => {
    await lan.publishAsync("homelab/energy/hpump", meterReading(1, Date.now()), { qos: 1 });
    // Home Assistant subscribes later than the configs were sent: they are retained on the broker.
    await until(() => (agent.stats.counters.queued >= 1 ? true : undefined), "the reading taken");
    const configs = await until(async () => {
      const ha = await listen(["homeassistant/sensor/hpump/+/config", "edgemesh/hpump/#"]);
      await new Promise((r) => setTimeout(r, 300));
      await ha.client.endAsync();
      return ha.seen.size >= 6 ? ha.seen : undefined;
    }, "the retained discovery configs, state and availability");
    const readings = ["current", "power_kw", "total_energy_kwh", "voltage"];
    for (const reading of readings) {
      const entry = configs.get(`homeassistant/sensor/hpump/${reading}/config`);
      expect(entry?.retain, reading).toBe(true);
      const config = HaSensorConfig.parse(JSON.parse(entry?.payload ?? "{}"));
      expect(config).toMatchObject({
        state_topic: "edgemesh/hpump/state",
        availability_topic: "edgemesh/hpump/availability",
        value_template: `{{ value_json.${reading} }}`,
        device: { identifiers: ["edgemesh_hpump"], via_device: `edgemesh_${AGENT}` },
      });
    }
    expect(JSON.parse(configs.get("edgemesh/hpump/state")?.payload ?? "{}")).toMatchObject({ power_kw: 3.2, voltage: 230 });
    expect(configs.get("edgemesh/hpump/availability")).toEqual({ payload: "online", retain: true });

    await lan.publishAsync("homelab/hpump/availability", "offline", { qos: 1 });
    const offline = await until(async () => {
      const ha = await listen(["edgemesh/hpump/availability"]);
      await new Promise((r) => setTimeout(r, 200));
      await ha.client.endAsync();
      return ha.seen.get("edgemesh/hpump/availability")?.payload === "offline" ? true : undefined;
    }, "availability offline for Home Assistant");
    expect(offline).toBe(true);
  });

  it("Home Assistant's statestream becomes readings of the mapped edgemesh device, with the entity's unit", async () => {
    await lan.publishAsync("homeassistant/statestream/sensor/living_room_temperature/unit_of_measurement", '"°F"', { qos: 1 });
    await lan.publishAsync("homeassistant/statestream/sensor/living_room_temperature/state", "71.6", { qos: 1 });
    await lan.publishAsync("homeassistant/statestream/light/hall/state", "on", { qos: 1 }); // not mapped: ignored
    const twin = await until(async () => {
      const t = await twinOf(edge, "ha-living");
      return t.reported.readings.temperature ? t : undefined;
    }, "the statestream reading in the twin");
    // Normalized at the edge: 71.6 °F is 22 °C.
    expect(twin.reported.readings.temperature).toMatchObject({ value: 22, unit: "°C" });
  });

  it("Home Assistant's eventstream becomes events of the Home Assistant device", async () => {
    await lan.publishAsync(
      "homeassistant/events",
      JSON.stringify({
        event_type: "state_changed",
        event_data: { entity_id: "binary_sensor.front_door", old_state: { state: "off" }, new_state: { state: "on" } },
      }),
      { qos: 1 },
    );
    const events = await until(async () => {
      const answer = await edge.admin<{ messages: { routing_key: string }[] }>("GET", "/v1/messages?device=home-assistant&type=event");
      return answer.body.messages?.length ? answer.body.messages : undefined;
    }, "the event in the message history");
    // The history keeps the route, not the body; the body's mapping is agent/ha-streams.ts (homeassistant.test.ts).
    expect(events[0]?.routing_key).toBe("home.living.home-assistant.state_changed");
  });
});
