/**
 * Home Assistant's own data into the mesh (docs/homeassistant.md): `mqtt_statestream` and
 * `mqtt_eventstream` messages turned into edgemesh readings and events, with no I/O.
 */
import { z } from "zod";

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
