/**
 * Home Assistant both ways (agent/ha-discovery.ts, agent/ha-streams.ts): MQTT discovery configs for bridged devices,
 * statestream and eventstream into edgemesh messages that the edge's own schemas accept.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "../../agent/config.ts";
import { ControlError, commandFromHomeAssistant, controlMessages, HA_COMPONENT_SCHEMAS, HaControl } from "../../agent/ha-controls.ts";
import {
  discoveryMessages,
  HaBinarySensorConfig,
  HaSensorConfig,
  haDeviceOf,
  removalMessages,
  StateKeeper,
  stateMessage,
} from "../../agent/ha-discovery.ts";
import { eventFromHomeAssistant, StatestreamReader } from "../../agent/ha-streams.ts";
import { EventPayload, TelemetryPayload } from "../../shared/schemas/message.ts";

const meter = {
  id: "heatpump-1",
  name: "Heat pump",
  type: "energy",
  room: "utility",
  readings: { power: "W", energy_total: "kWh", flow_temperature: "°C", running: undefined },
};

describe("Home Assistant MQTT discovery", () => {
  it("one retained sensor config per reading, grouped under the device, with Home Assistant's device classes", () => {
    const messages = discoveryMessages(meter, { via: "agent-1", version: "0.1.0" });
    expect(messages.map((m) => m.topic)).toEqual([
      "homeassistant/sensor/heatpump-1/energy_total/config",
      "homeassistant/sensor/heatpump-1/flow_temperature/config",
      "homeassistant/sensor/heatpump-1/power/config",
      "homeassistant/sensor/heatpump-1/running/config",
    ]);
    expect(messages.every((m) => m.retain)).toBe(true);
    const configs = messages.map((m) => HaSensorConfig.parse(JSON.parse(m.payload)));
    const byReading = Object.fromEntries(configs.map((c) => [c.unique_id.replace("edgemesh_heatpump-1_", ""), c]));
    expect(byReading.energy_total).toMatchObject({ device_class: "energy", state_class: "total_increasing", unit_of_measurement: "kWh" });
    expect(byReading.power).toMatchObject({ device_class: "power", unit_of_measurement: "W" });
    expect(byReading.flow_temperature).toMatchObject({ device_class: "temperature", unit_of_measurement: "°C" });
    expect(byReading.running?.unit_of_measurement).toBeUndefined();
    expect(new Set(configs.map((c) => JSON.stringify(c.device))).size).toBe(1);
    expect(configs[0]?.device).toMatchObject({ name: "Heat pump", suggested_area: "utility", via_device: "edgemesh_agent-1" });
    expect(configs[0]).toMatchObject({
      state_topic: "edgemesh/heatpump-1/state",
      availability_topic: "edgemesh/heatpump-1/availability",
    });
  });

  it("the state message holds plain values the value templates read; removal is an empty retained config", () => {
    const state = stateMessage("heatpump-1", { power: { value: 1200, unit: "W" }, running: true, note: "text is left out" });
    expect(state).toEqual({ topic: "edgemesh/heatpump-1/state", payload: JSON.stringify({ power: 1200, running: true }), retain: true });
    expect(removalMessages("heatpump-1", ["power"])).toEqual([
      { topic: "homeassistant/sensor/heatpump-1/power/config", payload: "", retain: true },
    ]);
  });
});

describe("StateKeeper", () => {
  it("keeps every reading last seen per device and says when a reading is new (a new discovery config)", () => {
    const keeper = new StateKeeper();
    expect(keeper.update("m", { power: { value: 5, unit: "W" } })).toEqual({
      state: { power: { value: 5, unit: "W" } },
      units: { power: "W" },
      booleans: [],
      newReadings: true,
    });
    const second = keeper.update("m", { power: { value: 7, unit: "W" }, running: true, label: "x" });
    expect(second).toEqual({
      state: { power: { value: 7, unit: "W" }, running: true },
      units: { power: "W", running: undefined },
      booleans: ["running"],
      newReadings: true,
    });
    expect(keeper.update("m", { running: false }).newReadings).toBe(false);
    expect(JSON.parse(stateMessage("m", keeper.update("m", {}).state).payload)).toEqual({ power: 7, running: false });
  });
});

describe("Home Assistant statestream and eventstream into edgemesh", () => {
  it("a mapped entity's state becomes a reading, with the unit from its attribute topic", () => {
    const reader = new StatestreamReader("homeassistant/statestream", [
      { entity_id: "sensor.living_room_temperature", device: "ha-living", reading: "temperature" },
      { entity_id: "switch.kettle", device: "ha-kitchen", reading: "kettle_on" },
    ]);
    expect(reader.filter).toBe("homeassistant/statestream/#");
    expect(reader.read("homeassistant/statestream/sensor/living_room_temperature/unit_of_measurement", '"°F"')).toEqual({
      kind: "attribute",
    });
    const reading = reader.read("homeassistant/statestream/sensor/living_room_temperature/state", "70.7");
    expect(reading).toEqual({
      kind: "reading",
      device: "ha-living",
      routingKey: "sensors.homeassistant.ha-living",
      item: { payload: { temperature: { value: 70.7, unit: "°F" } } },
    });
    if (reading.kind === "reading") expect(TelemetryPayload.safeParse(reading.item.payload).success).toBe(true);
    expect(reader.read("homeassistant/statestream/switch/kettle/state", "on")).toMatchObject({ item: { payload: { kettle_on: true } } });
    expect(reader.read("homeassistant/statestream/switch/kettle/state", "unavailable")).toEqual({
      kind: "skipped",
      reason: "not_a_value",
      entity: "switch.kettle",
    });
    expect(reader.read("homeassistant/statestream/light/hall/state", "on")).toEqual({
      kind: "skipped",
      reason: "unmapped_entity",
      entity: "light.hall",
    });
    expect(reader.read("elsewhere/light/hall/state", "on")).toEqual({ kind: "skipped", reason: "not_statestream" });
  });

  it("an eventstream event becomes an edgemesh event the edge's schema accepts", () => {
    const event = eventFromHomeAssistant(
      JSON.stringify({
        event_type: "state_changed",
        event_data: { entity_id: "binary_sensor.front_door", old_state: { state: "off" }, new_state: { state: "on" } },
      }),
    );
    expect(event).toEqual({
      payload: {
        event_type: "state_changed",
        entity_id: "binary_sensor.front_door",
        previous_state: "off",
        current_state: "on",
        source: "home_assistant",
      },
    });
    expect(EventPayload.safeParse(event?.payload).success).toBe(true);
    expect(eventFromHomeAssistant(JSON.stringify({ event_type: "My Event!" }))?.payload.event_type).toBe("my_event_");
    expect(eventFromHomeAssistant("not json")).toBeUndefined();
    expect(eventFromHomeAssistant(JSON.stringify({ event_data: {} }))).toBeUndefined();
  });
});

describe("the agent's homeassistant section", () => {
  const example = readFileSync(join(import.meta.dirname, "../../infra/agent/agent.example.yaml"), "utf8");

  it("the example config (infra/agent) is valid and turns discovery on", () => {
    expect(parseConfig(example, "/tmp").homeassistant).toMatchObject({
      discovery: true,
      discovery_prefix: "homeassistant",
      state_base: "edgemesh",
    });
  });

  it("a bad entity mapping is refused with the key at fault", () => {
    const bad = example.replace(
      "homeassistant:\n  discovery: true",
      "homeassistant:\n  statestream:\n    base_topic: hs\n    entities:\n      - { entity_id: Living Room, device: x, reading: t }",
    );
    expect(() => parseConfig(bad, "/tmp")).toThrow(ConfigError);
    expect(() => parseConfig(bad, "/tmp")).toThrow(/homeassistant\.statestream\.entities\.0\.entity_id: must be an entity id/);
  });
});

describe("Home Assistant components beyond sensors", () => {
  const plug = {
    id: "hall-plug",
    type: "energy",
    readings: { state: undefined, power: "W", motion: undefined },
    booleans: ["state", "motion"],
  };

  it("a boolean reading is a binary_sensor with its device class; a reading a control stands for is no sensor", () => {
    const messages = discoveryMessages(plug, {}, ["state"]);
    expect(messages.map((m) => m.topic)).toEqual([
      "homeassistant/binary_sensor/hall-plug/motion/config",
      "homeassistant/sensor/hall-plug/power/config",
    ]);
    const motion = HaBinarySensorConfig.parse(JSON.parse(messages[0]?.payload ?? ""));
    expect(motion).toMatchObject({
      device_class: "motion",
      payload_on: "ON",
      value_template: "{{ 'ON' if value_json.motion else 'OFF' }}",
    });
  });

  const controls = [
    { component: "switch", reading: "state", command: "set", parameters: { state: "{value}" } },
    { component: "light", reading: "lamp", command: "light", parameters: { on: "{value}" }, values: { ON: true, OFF: false } },
    { component: "number", reading: "brightness", command: "dim", min: 0, max: 254, unit: "%" },
    { component: "select", reading: "mode", command: "mode", options: ["eco", "comfort"] },
    { component: "button", key: "identify", command: "identify", parameters: {} },
    { component: "climate", reading: "setpoint", current: "temperature", command: "setpoint", min: 5, max: 30, step: 0.5 },
  ].map((c) => HaControl.parse(c));

  it("each controllable component's config fits Home Assistant's schema for it, with a command topic per control", () => {
    const messages = controlMessages(plug, controls, { prefix: "homeassistant", stateBase: "edgemesh", haDevice: haDeviceOf(plug) });
    expect(messages.map((m) => m.topic)).toEqual([
      "homeassistant/switch/hall-plug/state/config",
      "homeassistant/light/hall-plug/lamp/config",
      "homeassistant/number/hall-plug/brightness/config",
      "homeassistant/select/hall-plug/mode/config",
      "homeassistant/button/hall-plug/identify/config",
      "homeassistant/climate/hall-plug/setpoint/config",
    ]);
    for (const [i, message] of messages.entries()) {
      const component = controls[i]?.component as keyof typeof HA_COMPONENT_SCHEMAS;
      const config = HA_COMPONENT_SCHEMAS[component].parse(JSON.parse(message.payload)) as Record<string, unknown>;
      const commandTopic = config.command_topic ?? config.temperature_command_topic;
      expect(commandTopic).toBe(`edgemesh/hall-plug/${message.topic.split("/")[3]}/set`);
      expect(message.retain).toBe(true);
    }
    const climate = JSON.parse(messages[5]?.payload ?? "");
    expect(climate).toMatchObject({
      current_temperature_template: "{{ value_json.temperature }}",
      min_temp: 5,
      max_temp: 30,
      temp_step: 0.5,
    });
  });

  it("what Home Assistant sends becomes the control's command; a payload outside the control is refused", () => {
    const [toggle, lamp, dim, mode, button, climate] = controls as [HaControl, HaControl, HaControl, HaControl, HaControl, HaControl];
    expect(commandFromHomeAssistant(toggle, "OFF")).toEqual({ command: "set", parameters: { state: "OFF" } });
    expect(commandFromHomeAssistant(lamp, "ON")).toEqual({ command: "light", parameters: { on: true } });
    expect(commandFromHomeAssistant(dim, "128")).toEqual({ command: "dim", parameters: { value: 128 } });
    expect(commandFromHomeAssistant(mode, "eco")).toEqual({ command: "mode", parameters: { value: "eco" } });
    expect(commandFromHomeAssistant(button, "PRESS")).toEqual({ command: "identify", parameters: {} });
    expect(commandFromHomeAssistant(climate, "21.5")).toEqual({ command: "setpoint", parameters: { value: 21.5 } });
    expect(() => commandFromHomeAssistant(toggle, "MAYBE")).toThrow(ControlError);
    expect(() => commandFromHomeAssistant(dim, "300")).toThrow(/outside/);
    expect(() => commandFromHomeAssistant(mode, "turbo")).toThrow(/options/);
    expect(() => commandFromHomeAssistant(climate, "warm")).toThrow(/not a number/);
  });
});
