/**
 * Home Assistant, both ways, as MQTT messages on the LAN broker (docs/homeassistant.md):
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
const HaDevice = z.strictObject({
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

/** What the agent knows of a device it bridges: the registry's fields and the readings seen so far. */
export interface BridgedDevice {
  id: string;
  name?: string;
  type: string;
  room?: string;
  /** Reading name → its (canonical) unit, if any. */
  readings: Record<string, string | undefined>;
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

/** One retained discovery config per reading of the device. */
export function discoveryMessages(device: BridgedDevice, options: DiscoveryOptions = {}): MqttMessage[] {
  const prefix = options.prefix ?? DEFAULT_DISCOVERY_PREFIX;
  const topics = haTopics(device.id, options.stateBase);
  const haDevice = HaDevice.parse({
    identifiers: [`edgemesh_${nodeId(device.id)}`],
    name: device.name ?? device.id,
    manufacturer: "edgemesh",
    model: device.type,
    ...(device.room && { suggested_area: device.room }),
    ...(options.via && { via_device: `edgemesh_${nodeId(options.via)}` }),
  });
  return Object.entries(device.readings)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([reading, unit]) => {
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
  ): { state: Record<string, unknown>; units: Record<string, string | undefined>; newReadings: boolean } {
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
    return { state: known.readings, units: known.units, newReadings };
  }
}

// ── In: Home Assistant's statestream and eventstream ─────────────────────────────────────────

/** Which Home Assistant entity feeds which device and reading. */
export const HaEntityMapping = z.strictObject({
  entity_id: z.string().regex(/^[a-z_]+\.[a-z0-9_]+$/, { message: "must be an entity id like sensor.living_room_temperature" }),
  device: z.string().min(1).max(64),
  reading: z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, { message: "must be a reading name (a-z, 0-9, _)" }),
  /** Overrides the entity's unit_of_measurement attribute. */
  unit: z.string().min(1).max(16).optional(),
  /** Where the reading is routed; `sensors.homeassistant.<device>` by default (register the device with type `homeassistant`). */
  routing_key: z.string().min(1).max(255).optional(),
});
export type HaEntityMapping = z.infer<typeof HaEntityMapping>;

export type StatestreamOutcome =
  | {
      kind: "reading";
      device: string;
      routingKey: string;
      item: { payload: Record<string, number | boolean | { value: number; unit: string }> };
    }
  | { kind: "attribute" }
  | { kind: "skipped"; reason: "not_statestream" | "unmapped_entity" | "not_a_value"; entity?: string };

/**
 * Turns statestream messages into readings. Attributes (the unit among them) arrive on topics of
 * their own, before or after the state, so the last unit seen per entity is remembered.
 */
export class StatestreamReader {
  readonly #base: string;
  readonly #mappings: Map<string, HaEntityMapping>;
  readonly #units = new Map<string, string>();

  constructor(base: string, mappings: HaEntityMapping[]) {
    this.#base = base.replace(/\/+$/, "");
    this.#mappings = new Map(mappings.map((m) => [m.entity_id, m]));
  }

  /** The filter to subscribe to on the LAN broker. */
  get filter(): string {
    return `${this.#base}/#`;
  }

  read(topic: string, payload: string): StatestreamOutcome {
    if (!topic.startsWith(`${this.#base}/`)) return { kind: "skipped", reason: "not_statestream" };
    const parts = topic.slice(this.#base.length + 1).split("/");
    if (parts.length !== 3) return { kind: "skipped", reason: "not_statestream" };
    const [domain, object, attribute] = parts as [string, string, string];
    const entity = `${domain}.${object}`;
    if (attribute === "unit_of_measurement") {
      // Attributes are JSON-encoded by statestream: `"°C"`.
      const unit = parseJson(payload);
      if (typeof unit === "string" && unit !== "") this.#units.set(entity, unit);
      return { kind: "attribute" };
    }
    if (attribute !== "state") return { kind: "attribute" };
    const mapping = this.#mappings.get(entity);
    if (!mapping) return { kind: "skipped", reason: "unmapped_entity", entity };
    // The state is the bare string Home Assistant holds: "21.5", "on", "unavailable".
    const state = payload.trim();
    let value: number | boolean;
    if (state === "on" || state === "off") value = state === "on";
    else if (state !== "" && Number.isFinite(Number(state))) value = Number(state);
    else return { kind: "skipped", reason: "not_a_value", entity };
    const unit = mapping.unit ?? this.#units.get(entity);
    const reading = typeof value === "number" && unit ? { value, unit } : value;
    return {
      kind: "reading",
      device: mapping.device,
      routingKey: mapping.routing_key ?? `sensors.homeassistant.${mapping.device}`,
      item: { payload: { [mapping.reading]: reading } },
    };
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** mqtt_eventstream's message: `{"event_type": "...", "event_data": {...}}`. */
const HaEvent = z.looseObject({ event_type: z.string().min(1).max(64), event_data: z.record(z.string(), z.unknown()).default({}) });

/**
 * An event Home Assistant published, as an edgemesh event of the given device (Home Assistant
 * itself, registered as a device): `event_type` folded to the edge's lowercase words
 * (`call_service` stays, `zha_event` stays, `My Event` → `my_event`).
 */
export function eventFromHomeAssistant(payload: string): { payload: Record<string, unknown> } | undefined {
  const parsed = HaEvent.safeParse(parseJson(payload));
  if (!parsed.success) return undefined;
  const eventType = parsed.data.event_type
    .toLowerCase()
    .replace(/[^a-z0-9_]/g, "_")
    .replace(/^[^a-z]+/, "");
  if (eventType === "") return undefined;
  const data = parsed.data.event_data;
  const entity = typeof data.entity_id === "string" ? data.entity_id.slice(0, 200) : undefined;
  const state = (data.new_state as { state?: unknown } | undefined)?.state;
  const previous = (data.old_state as { state?: unknown } | undefined)?.state;
  return {
    payload: {
      event_type: eventType.slice(0, 64),
      ...(entity && { entity_id: entity }),
      ...(typeof state === "string" && { current_state: state.slice(0, 200) }),
      ...(typeof previous === "string" && { previous_state: previous.slice(0, 200) }),
      source: "home_assistant",
    },
  };
}
