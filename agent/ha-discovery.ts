/**
 * Home Assistant's MQTT discovery for the agent's devices (docs/homeassistant.md), as messages
 * with no I/O; the way in (statestream, eventstream) is agent/ha-streams.ts, the controllable
 * components agent/ha-controls.ts.
 *
 * - Out: MQTT discovery. For every device the agent bridges, one retained sensor config per
 *   reading under `<prefix>/sensor/<node>/<reading>/config`, pointing at a state topic the agent
 *   keeps current (`edgemesh/<device>/state`, the edge-normalized readings as one JSON object) and
 *   an availability topic. Home Assistant creates the entities; an empty retained config removes one.
 * - In: Home Assistant's own `mqtt_statestream` (`<base>/<domain>/<object_id>/state` and one topic
 *   per attribute) and `mqtt_eventstream` (`{"event_type", "event_data"}`), turned into edgemesh
 *   telemetry and event messages for the devices they are mapped to.
 *
 * The discovery payload is described by a zod schema that mirrors the part of Home Assistant's
 * MQTT sensor schema the edge uses (Home Assistant itself cannot be installed here: it needs a
 * newer Python than the machine's), so a config the edge sends is checked before it is sent.
 */
import { z } from "zod";

export const DEFAULT_DISCOVERY_PREFIX = "homeassistant";
export const DEFAULT_STATE_BASE = "edgemesh";

/** Home Assistant's `device` block: the entities of one bridged device group under it. */
export const HaDevice = z.strictObject({
  identifiers: z.array(z.string().min(1)).min(1),
  name: z.string().min(1),
  manufacturer: z.string().optional(),
  model: z.string().optional(),
  suggested_area: z.string().optional(),
  via_device: z.string().optional(),
});

/** The MQTT sensor discovery config, as Home Assistant reads it (full key names, no abbreviations). */
export const HaSensorConfig = z.strictObject({
  name: z.string().min(1),
  unique_id: z.string().regex(/^[a-zA-Z0-9_-]+$/),
  object_id: z.string().regex(/^[a-z0-9_]+$/),
  state_topic: z.string().min(1),
  value_template: z.string().min(1),
  unit_of_measurement: z.string().optional(),
  device_class: z.string().optional(),
  state_class: z.enum(["measurement", "total", "total_increasing"]).optional(),
  availability_topic: z.string().min(1),
  payload_available: z.string(),
  payload_not_available: z.string(),
  device: HaDevice,
  origin: z.strictObject({ name: z.string(), sw_version: z.string().optional(), support_url: z.string().optional() }),
});
export type HaSensorConfig = z.infer<typeof HaSensorConfig>;

/** The MQTT binary_sensor discovery config (https://www.home-assistant.io/integrations/binary_sensor.mqtt/). */
export const HaBinarySensorConfig = z.strictObject({
  name: z.string().min(1),
  unique_id: z.string().regex(/^[a-zA-Z0-9_-]+$/),
  object_id: z.string().regex(/^[a-z0-9_]+$/),
  state_topic: z.string().min(1),
  value_template: z.string().min(1),
  payload_on: z.string(),
  payload_off: z.string(),
  device_class: z.string().optional(),
  availability_topic: z.string().min(1),
  payload_available: z.string(),
  payload_not_available: z.string(),
  device: HaDevice,
  origin: z.strictObject({ name: z.string(), sw_version: z.string().optional(), support_url: z.string().optional() }),
});

/** What the agent knows of a device it bridges: the registry's fields and the readings seen so far. */
export interface BridgedDevice {
  id: string;
  name?: string;
  type: string;
  room?: string;
  /** Reading name → its (canonical) unit, if any. */
  readings: Record<string, string | undefined>;
  /** Readings that are booleans: binary_sensor entities. */
  booleans?: readonly string[];
}

export interface DiscoveryOptions {
  prefix?: string;
  stateBase?: string;
  /** The agent's own id, Home Assistant's `via_device`. */
  via?: string;
  version?: string;
}

export interface MqttMessage {
  topic: string;
  payload: string;
  retain: boolean;
}

export const haTopics = (device: string, base = DEFAULT_STATE_BASE) => ({
  state: `${base}/${device}/state`,
  availability: `${base}/${device}/availability`,
});

/** Home Assistant's sensor device classes for the edge's canonical units (and reading names where a unit is shared). */
function classify(reading: string, unit: string | undefined): Pick<HaSensorConfig, "device_class" | "state_class"> {
  switch (unit) {
    case "°C":
      return { device_class: "temperature", state_class: "measurement" };
    case "%":
      if (reading.includes("battery")) return { device_class: "battery", state_class: "measurement" };
      if (reading.includes("humid")) return { device_class: "humidity", state_class: "measurement" };
      return { state_class: "measurement" };
    case "W":
      return { device_class: "power", state_class: "measurement" };
    case "kWh":
      // Energy meters count up; Home Assistant's energy dashboard wants total_increasing.
      return { device_class: "energy", state_class: "total_increasing" };
    case "V":
      return { device_class: "voltage", state_class: "measurement" };
    case "A":
      return { device_class: "current", state_class: "measurement" };
    case "hPa":
      return { device_class: "atmospheric_pressure", state_class: "measurement" };
    case "lx":
      return { device_class: "illuminance", state_class: "measurement" };
    case "ppm":
      return reading.includes("co2") ? { device_class: "carbon_dioxide", state_class: "measurement" } : { state_class: "measurement" };
    default:
      return { state_class: "measurement" };
  }
}

/** Home Assistant ids allow [a-zA-Z0-9_-]; object ids are lowercase words. */
const nodeId = (device: string) => device.replace(/[^a-zA-Z0-9_-]/g, "_");
const objectId = (device: string, reading: string) => `${device}_${reading}`.toLowerCase().replace(/[^a-z0-9_]/g, "_");

/** Home Assistant's binary_sensor device classes by reading name. */
function binaryClass(reading: string): string | undefined {
  for (const [word, deviceClass] of [
    ["occupancy", "occupancy"],
    ["motion", "motion"],
    ["contact", "door"],
    ["door", "door"],
    ["window", "window"],
    ["leak", "moisture"],
    ["water", "moisture"],
    ["smoke", "smoke"],
    ["tamper", "tamper"],
    ["battery_low", "battery"],
  ] as const) {
    if (reading.includes(word)) return deviceClass;
  }
  return undefined;
}

/**
 * One retained discovery config per reading of the device — a sensor for a number, a
 * binary_sensor for a boolean. A reading a control stands for (agent/ha-controls.ts makes its
 * config) is left out.
 */
export function discoveryMessages(
  device: BridgedDevice,
  options: DiscoveryOptions = {},
  controlled: readonly string[] = [],
): MqttMessage[] {
  const prefix = options.prefix ?? DEFAULT_DISCOVERY_PREFIX;
  const topics = haTopics(device.id, options.stateBase);
  const haDevice = haDeviceOf(device, options);
  const skipped = new Set(controlled);
  const booleans = new Set(device.booleans ?? []);
  const common = (reading: string) => ({
    name: reading.replaceAll("_", " "),
    unique_id: `edgemesh_${nodeId(device.id)}_${reading}`,
    object_id: objectId(device.id, reading),
    state_topic: topics.state,
    availability_topic: topics.availability,
    payload_available: "online",
    payload_not_available: "offline",
    device: haDevice,
    origin: { name: "edgemesh", ...(options.version && { sw_version: options.version }) },
  });
  const readings = Object.entries(device.readings)
    .filter(([reading]) => !skipped.has(reading))
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([reading, unit]) => {
      if (booleans.has(reading)) {
        const deviceClass = binaryClass(reading);
        const config = HaBinarySensorConfig.parse({
          ...common(reading),
          value_template: `{{ 'ON' if value_json.${reading} else 'OFF' }}`,
          payload_on: "ON",
          payload_off: "OFF",
          ...(deviceClass && { device_class: deviceClass }),
        });
        return { topic: `${prefix}/binary_sensor/${nodeId(device.id)}/${reading}/config`, payload: JSON.stringify(config), retain: true };
      }
      const config = HaSensorConfig.parse({
        name: reading.replaceAll("_", " "),
        unique_id: `edgemesh_${nodeId(device.id)}_${reading}`,
        object_id: objectId(device.id, reading),
        state_topic: topics.state,
        // The state message carries every reading last seen (StateKeeper), so each template finds its key.
        value_template: `{{ value_json.${reading} }}`,
        ...(unit && { unit_of_measurement: unit }),
        ...classify(reading, unit),
        availability_topic: topics.availability,
        payload_available: "online",
        payload_not_available: "offline",
        device: haDevice,
        origin: { name: "edgemesh", ...(options.version && { sw_version: options.version }) },
      });
      return { topic: `${prefix}/sensor/${nodeId(device.id)}/${reading}/config`, payload: JSON.stringify(config), retain: true };
    });
  return readings;
}

/** Home Assistant's device block of an edgemesh device: its entities group under it. */
export function haDeviceOf(device: BridgedDevice, options: DiscoveryOptions = {}): z.infer<typeof HaDevice> {
  return HaDevice.parse({
    identifiers: [`edgemesh_${nodeId(device.id)}`],
    name: device.name ?? device.id,
    manufacturer: "edgemesh",
    model: device.type,
    ...(device.room && { suggested_area: device.room }),
    ...(options.via && { via_device: `edgemesh_${nodeId(options.via)}` }),
  });
}

/** Empty retained configs: Home Assistant removes the entities (a device no longer bridged). */
export function removalMessages(device: string, readings: string[], prefix = DEFAULT_DISCOVERY_PREFIX): MqttMessage[] {
  return readings.map((reading) => ({ topic: `${prefix}/sensor/${nodeId(device)}/${reading}/config`, payload: "", retain: true }));
}

/** A reading as Home Assistant's templates read it: a plain number or boolean. */
function plain(reading: unknown): number | boolean | undefined {
  if (typeof reading === "number" || typeof reading === "boolean") return reading;
  if (reading && typeof reading === "object" && typeof (reading as { value?: unknown }).value === "number")
    return (reading as { value: number }).value;
  return undefined;
}

/** The state message the discovery configs read: readings as plain numbers or booleans. */
export function stateMessage(device: string, readings: Record<string, unknown>, base?: string): MqttMessage {
  const values: Record<string, number | boolean> = {};
  for (const [name, reading] of Object.entries(readings)) {
    const value = plain(reading);
    if (value !== undefined) values[name] = value;
  }
  return { topic: haTopics(device, base).state, payload: JSON.stringify(values), retain: true };
}

/**
 * Per device, every reading last seen and its unit: a message with only some readings still
 * yields a state message with all of them, and a reading seen for the first time means a new
 * discovery config (`update` says so).
 */
export class StateKeeper {
  readonly #devices = new Map<string, { readings: Record<string, unknown>; units: Record<string, string | undefined> }>();

  update(
    device: string,
    readings: Record<string, unknown>,
  ): { state: Record<string, unknown>; units: Record<string, string | undefined>; booleans: string[]; newReadings: boolean } {
    const known = this.#devices.get(device) ?? { readings: {}, units: {} };
    let newReadings = false;
    for (const [name, reading] of Object.entries(readings)) {
      if (plain(reading) === undefined) continue;
      if (!(name in known.units)) newReadings = true;
      known.readings[name] = reading;
      const unit = reading && typeof reading === "object" ? (reading as { unit?: unknown }).unit : undefined;
      known.units[name] = typeof unit === "string" ? unit : known.units[name];
    }
    this.#devices.set(device, known);
    const booleans = Object.keys(known.readings).filter((name) => typeof known.readings[name] === "boolean");
    return { state: known.readings, units: known.units, booleans, newReadings };
  }
}
