/**
 * The adapters at work (docs/devices.md): each mapping file's reading and availability topics
 * become translators of the MQTT bridge, a device seen there is remembered with the name it goes
 * by on the LAN (commands need it) and its inferred type, registered on the edge on first sight
 * when the allow-list takes it, and an edgemesh command for it is published where its mapping says.
 */
import {
  type AdapterSpec,
  type CommandContext,
  commandMessage,
  deviceIdFor,
  flatten,
  inferType,
  matchTemplate,
  nameMatches,
  pathValue,
  type ReadingSource,
  readingName,
  templateFilter,
  textReading,
} from "./adapter-spec.ts";
import { EdgeError } from "./edge-client.ts";
import type { HaControl } from "./ha-controls.ts";
import { type Conversion, convertPayload } from "./lan-message.ts";
import type { Logger } from "./log.ts";
import type { Translator } from "./mqtt-bridge.ts";

export interface AdapterDevice {
  spec: AdapterSpec;
  /** The name the device goes by on the LAN (its topic level). */
  name: string;
  type: string;
}

export interface AdapterOptions {
  agentId: string;
  /** Device id patterns (`*` any run) registered on the edge on first sight; none: no auto-provisioning. */
  allow?: readonly string[];
  provision(device: { id: string; type: string; name: string; ecosystem: string }): Promise<unknown>;
  availability(device: string, status: "online" | "offline"): void;
  log: Logger;
}

export class AdapterSet {
  readonly specs: readonly AdapterSpec[];
  readonly #devices = new Map<string, AdapterDevice>();
  readonly #provisioned = new Set<string>();
  readonly #options: AdapterOptions;
  #n = 0;

  constructor(specs: readonly AdapterSpec[], options: AdapterOptions) {
    this.specs = specs;
    this.#options = options;
  }

  /** Devices seen through an adapter, by edgemesh id. */
  get devices(): ReadonlyMap<string, AdapterDevice> {
    return this.#devices;
  }

  translators(): Translator[] {
    const out: Translator[] = [];
    for (const spec of this.specs) {
      for (const source of spec.availability) {
        out.push({
          filter: templateFilter(source.topic),
          qos: 1,
          translate: async (topic, raw) => {
            const match = matchTemplate(source.topic, topic);
            const id = match && deviceIdFor(match.device);
            if (!match || !id) return "consumed";
            const status = availabilityOf(raw.toString("utf8"), source.online, source.offline);
            if (status) {
              this.#remember(id, spec, match.device);
              this.#options.availability(id, status);
            }
            return "consumed";
          },
        });
      }
      for (const source of spec.readings) {
        out.push({ filter: templateFilter(source.topic), qos: 1, translate: (topic, raw) => this.#read(spec, source, topic, raw) });
      }
    }
    return out;
  }

  async #read(spec: AdapterSpec, source: ReadingSource, topic: string, raw: Buffer): Promise<Conversion | "consumed"> {
    const match = matchTemplate(source.topic, topic);
    if (!match || source.skip_devices.includes(match.device)) return "consumed";
    const id = deviceIdFor(match.device);
    if (!id) return { ok: false, reason: "invalid", detail: `"${match.device.slice(0, 64)}" cannot be an edgemesh device id` };
    let time: unknown;
    let readings: Record<string, number | boolean>;
    const text = raw.toString("utf8");
    if (source.format === "text") {
      if (match.name === undefined || (source.names && !source.names.includes(match.name))) return "consumed";
      const value = textReading(text, spec.values);
      if (value === undefined) return "consumed";
      readings = { [readingName(match.name)]: value };
    } else {
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        return { ok: false, reason: "invalid", device: id, detail: `${spec.ecosystem}: the payload is not JSON` };
      }
      if (typeof body !== "object" || body === null || Array.isArray(body)) return "consumed";
      for (const [field, allowed] of Object.entries(source.when ?? {})) {
        if (!allowed.includes(String((body as Record<string, unknown>)[field]))) return "consumed";
      }
      const root = source.root ? pathValue(body, source.root) : body;
      if (typeof root !== "object" || root === null || Array.isArray(root)) return "consumed";
      if (source.time) time = pathValue(body, source.time);
      readings = flatten(root as Record<string, unknown>, spec.values);
    }
    const payload: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(readings)) {
      if (source.skip.some((pattern) => nameMatches(pattern, name))) continue;
      const unit = typeof value === "number" ? unitOf(source.units, name) : undefined;
      payload[name] = unit ? { value, unit } : value;
    }
    if (Object.keys(payload).length === 0) return "consumed";
    const device = this.#remember(id, spec, match.device, Object.keys(payload));
    await this.#provision(id, device);
    if (typeof time === "number" || typeof time === "string") payload.timestamp = time;
    // No routing key: the edge routes by the device's registered type and room (sensors.<type>.<room>).
    const route = { device: id, routingKey: "", type: "telemetry" as const, origin: topic };
    return convertPayload(Buffer.from(JSON.stringify(payload)), route, {
      agent: this.#options.agentId,
      source: spec.ecosystem,
      source_topic: topic.slice(0, 256),
      inferred_type: device.type,
    });
  }

  #remember(id: string, spec: AdapterSpec, name: string, readings: string[] = []): AdapterDevice {
    const known = this.#devices.get(id);
    if (known && (readings.length === 0 || known.type !== spec.default_type)) return known;
    // The type is inferred from the first readings that name one; until then the ecosystem's default.
    const device = { spec, name, type: readings.length > 0 ? inferType(spec, readings) : (known?.type ?? spec.default_type) };
    this.#devices.set(id, device);
    return device;
  }

  /** Auto-provisioning: once per device and run, when the allow-list takes it. */
  async #provision(id: string, device: AdapterDevice): Promise<void> {
    const allow = this.#options.allow;
    if (!allow || this.#provisioned.has(id) || !allow.some((pattern) => nameMatches(pattern, id))) return;
    try {
      await this.#options.provision({ id, type: device.type, name: device.name, ecosystem: device.spec.ecosystem });
      this.#options.log.info("device provisioned on the edge", { device: id, type: device.type, ecosystem: device.spec.ecosystem });
    } catch (error) {
      // Refused (another owner, no permission): said once, and the edge decides on each message.
      // Unreachable: thrown, so the message stays with the broker and comes again.
      if (!(error instanceof EdgeError && !error.retriable)) throw error;
      this.#options.log.warn("device not provisioned", { device: id, error: error.message });
    }
    this.#provisioned.add(id);
  }

  /** Its adapter's Home Assistant controls for a device, those whose reading it has (a button needs none). */
  controlsOf(device: string, readings: readonly string[]): HaControl[] {
    const known = this.#devices.get(device);
    if (!known) return [];
    return known.spec.homeassistant.filter((c) => c.reading === undefined || readings.includes(c.reading));
  }

  /** Whether commands for this device go through an adapter. */
  owns(device: string): boolean {
    return this.#devices.has(device);
  }

  /** The publish a command becomes; undefined when the device's adapter maps no such command. Throws MissingPlaceholder. */
  command(device: string, command: { id: string; command: string; parameters?: Record<string, unknown> }) {
    const known = this.#devices.get(device);
    if (!known) return undefined;
    this.#n = (this.#n % 2_000_000_000) + 1;
    const ctx: CommandContext = {
      device: known.name,
      command: command.command,
      id: command.id,
      n: this.#n,
      agent: this.#options.agentId,
      parameters: command.parameters ?? {},
    };
    return commandMessage(known.spec, ctx);
  }
}

function unitOf(units: Readonly<Record<string, string>>, name: string): string | undefined {
  if (units[name] !== undefined) return units[name];
  for (const [pattern, unit] of Object.entries(units)) if (nameMatches(pattern, name)) return unit;
  return undefined;
}

function availabilityOf(text: string, online: readonly string[], offline: readonly string[]): "online" | "offline" | undefined {
  let state = text.trim();
  try {
    const json = JSON.parse(state) as unknown;
    if (typeof json === "object" && json !== null && "state" in json) state = String((json as { state: unknown }).state);
    else if (typeof json === "boolean") state = String(json);
  } catch {}
  if (online.includes(state)) return "online";
  if (offline.includes(state)) return "offline";
  return undefined;
}
