/**
 * Adapters as data (docs/devices.md): one mapping file per ecosystem (agent/adapters/*.yaml, and
 * the user's own files named in the agent config) says which topics carry a device's readings,
 * its availability, and where and how a command is published. This file is the schema of those
 * files and the pure functions that apply them: topic templates, flattening a JSON state into
 * reading names, payload templates. No ecosystem is named in code.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseDocument } from "yaml";
import { z } from "zod";
import { HaControl } from "./ha-controls.ts";

/** Ecosystem and type names: as device types are (shared/schemas/device.ts's Slug). */
const Slug = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, { message: "must be 1-64 of a-z, 0-9, _ and -" });

/** A topic template: MQTT levels, where `{device}` and `{name}` capture one level each. */
const TopicTemplate = z
  .string()
  .min(1)
  .max(200)
  .refine((t) => t.split("/").includes("{device}"), { message: "must have {device} as a whole level" })
  .refine((t) => !t.includes("#") && t.split("/").every((l) => l === "+" || !l.includes("+")), {
    message: "levels are text, +, {device} or {name}",
  });

/** Name patterns: `*` is any run of characters (`*_apower`, `wifi_*`). */
const NamePattern = z.string().min(1).max(64);

const ReadingSource = z.strictObject({
  topic: TopicTemplate,
  /** `json`: an object of readings (nested objects flattened with `_`); `text`: one value named `{name}`. */
  format: z.enum(["json", "text"]),
  /** Only messages whose top-level fields have one of these values (Shelly: method NotifyStatus). */
  when: z.record(z.string(), z.array(z.string()).min(1)).optional(),
  /** The dotted path of the object holding the readings (Shelly: params). */
  root: z.string().min(1).max(100).optional(),
  /** The dotted path of the reading's time: ISO 8601 text, or seconds or milliseconds since the epoch. */
  time: z.string().min(1).max(100).optional(),
  /** `text` sources: only these `{name}` levels (Tasmota's stat/<topic>/POWER, not STATUS10). */
  names: z.array(z.string().min(1).max(64)).optional(),
  /** Reading names (after flattening) to leave out. */
  skip: z.array(NamePattern).default([]),
  /** The unit of a reading by name (patterns allowed): the reading becomes {value, unit}. */
  units: z.record(NamePattern, z.string().min(1).max(16)).default({}),
  /** Topics whose `{device}` level is one of these are no device (zigbee2mqtt/bridge). */
  skip_devices: z.array(z.string()).default([]),
});
export type ReadingSource = z.infer<typeof ReadingSource>;

const AvailabilitySource = z.strictObject({
  topic: TopicTemplate,
  /** Payloads (or the `state` field of a JSON payload) meaning online / offline. */
  online: z.array(z.string()).min(1),
  offline: z.array(z.string()).min(1),
});

const CommandOut = z.strictObject({
  /** An edgemesh command name, or `*` for any. The first entry that matches is used. */
  command: z.union([z.literal("*"), z.string().regex(/^[a-z][a-z0-9_]{0,63}$/)]),
  /** Topic template: `{device}`, `{command}`, `{parameters.x}`. */
  topic: z.string().min(1).max(200),
  /** `json`: the payload template is a JSON value; `text`: a string. */
  format: z.enum(["json", "text"]),
  /**
   * The payload template. A string that is exactly one placeholder is replaced by its value as it
   * is (`"{parameters}"` → the object); placeholders inside longer strings are interpolated.
   * Placeholders: {device}, {command}, {id}, {n} (a number per publish), {agent}, {parameters}, {parameters.x}.
   */
  payload: z.unknown(),
});
export type CommandOut = z.infer<typeof CommandOut>;

export const AdapterSpec = z.strictObject({
  ecosystem: Slug,
  readings: z.array(ReadingSource).min(1),
  availability: z.array(AvailabilitySource).default([]),
  /** Text values that are readings: "ON" → true. Other text is no reading. */
  values: z.record(z.string(), z.union([z.number(), z.boolean()])).default({}),
  commands: z.array(CommandOut).default([]),
  /** Type inference: the first entry with any of these readings names the device's type. */
  types: z.array(z.strictObject({ type: Slug, any: z.array(NamePattern).min(1) })).default([]),
  default_type: Slug,
  /** Home Assistant controls for this ecosystem's devices that have the reading (docs/homeassistant.md). */
  homeassistant: z.array(HaControl.omit({ device: true })).default([]),
});
export type AdapterSpec = z.infer<typeof AdapterSpec>;

export class AdapterError extends Error {
  override name = "AdapterError";
}

/** The mapping files that come with the agent. */
export const BUILT_IN_DIR = join(import.meta.dirname, "adapters");

export function parseAdapter(text: string, origin: string): AdapterSpec {
  const document = parseDocument(text, { prettyErrors: true });
  if (document.errors.length > 0) throw new AdapterError(`${origin}: ${document.errors.map((e) => e.message).join("; ")}`);
  const result = AdapterSpec.safeParse(document.toJS());
  if (!result.success) {
    throw new AdapterError(
      `${origin}: ${result.error.issues.map((i) => `${i.path.map(String).join(".") || "(top)"}: ${i.message}`).join("; ")}`,
    );
  }
  return result.data;
}

export function loadAdapterFile(file: string): AdapterSpec {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new AdapterError(`cannot read ${file}: ${(error as Error).message}`);
  }
  return parseAdapter(text, file);
}

/** The built-in adapters by ecosystem name. */
export function builtInAdapters(): Map<string, AdapterSpec> {
  const specs = new Map<string, AdapterSpec>();
  for (const name of readdirSync(BUILT_IN_DIR)
    .filter((f) => f.endsWith(".yaml"))
    .sort()) {
    const spec = loadAdapterFile(join(BUILT_IN_DIR, name));
    specs.set(spec.ecosystem, spec);
  }
  return specs;
}

// ── Topic templates ──────────────────────────────────────────────────────────────────────

export function templateFilter(template: string): string {
  return template
    .split("/")
    .map((l) => (/^\{[a-z.]+\}$/.test(l) ? "+" : l))
    .join("/");
}

/** The `{device}` and `{name}` levels of a topic, or undefined when it does not fit the template. */
export function matchTemplate(template: string, topic: string): { device: string; name?: string } | undefined {
  const levels = template.split("/");
  const parts = topic.split("/");
  if (levels.length !== parts.length) return undefined;
  const captured: Record<string, string> = {};
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i] as string;
    const part = parts[i] as string;
    if (level === "{device}" || level === "{name}") {
      if (part.length === 0) return undefined;
      captured[level.slice(1, -1)] = part;
    } else if (level !== "+" && level !== part) return undefined;
  }
  if (captured.device === undefined) return undefined;
  return { device: captured.device, ...(captured.name !== undefined && { name: captured.name }) };
}

// ── Names ──────────────────────────────────────────────────────────────────────────────────

/** A reading name from a field or path: `ApparentPower` → `apparent_power`, `switch:0` → `switch_0`. */
export function readingName(raw: string): string {
  let name = raw
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .replace(/([A-Z]+)([A-Z][a-z])/g, "$1_$2")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "_")
    .replace(/^_+|_+$/g, "");
  if (!/^[a-z]/.test(name)) name = `m_${name}`;
  return name.slice(0, 64);
}

/** An edgemesh device id from a name a device goes by on the LAN (`Kitchen Plug` → `kitchen-plug`). */
export function deviceIdFor(raw: string): string | undefined {
  const id = raw
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, "-")
    .replace(/^[-_]+|-+$/g, "")
    .slice(0, 64);
  return /^[a-z0-9][a-z0-9_-]{0,63}$/.test(id) ? id : undefined;
}

export function nameMatches(pattern: string, name: string): boolean {
  if (!pattern.includes("*")) return pattern === name;
  const regex = new RegExp(`^${pattern.split("*").map(escapeRegex).join(".*")}$`);
  return regex.test(name);
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

export function pathValue(value: unknown, path: string): unknown {
  let at = value;
  for (const key of path.split(".")) {
    if (typeof at !== "object" || at === null || Array.isArray(at)) return undefined;
    at = (at as Record<string, unknown>)[key];
  }
  return at;
}

/** A JSON object's leaves as readings by flattened name; text through the values table, arrays and other text left out. */
export function flatten(
  value: Record<string, unknown>,
  values: Readonly<Record<string, number | boolean>>,
  prefix = "",
  out: Record<string, number | boolean> = {},
  depth = 0,
): Record<string, number | boolean> {
  if (depth > 6) return out;
  for (const [key, field] of Object.entries(value)) {
    const name = readingName(prefix ? `${prefix}_${key}` : key);
    if (typeof field === "number" && Number.isFinite(field)) out[name] = field;
    else if (typeof field === "boolean") out[name] = field;
    else if (typeof field === "string" && values[field] !== undefined) out[name] = values[field] as number | boolean;
    else if (typeof field === "object" && field !== null && !Array.isArray(field))
      flatten(field as Record<string, unknown>, values, name, out, depth + 1);
  }
  return out;
}

/** A text payload as a reading: a number, or a value of the values table. */
export function textReading(text: string, values: Readonly<Record<string, number | boolean>>): number | boolean | undefined {
  const trimmed = text.trim();
  if (values[trimmed] !== undefined) return values[trimmed];
  if (trimmed === "" || !/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(trimmed)) return undefined;
  const n = Number(trimmed);
  return Number.isFinite(n) ? n : undefined;
}

// ── Command templates ─────────────────────────────────────────────────────────────────────

export interface CommandContext {
  device: string;
  command: string;
  id: string;
  n: number;
  agent: string;
  parameters: Record<string, unknown>;
}

export class MissingPlaceholder extends Error {
  override name = "MissingPlaceholder";
}

function placeholder(name: string, ctx: CommandContext): unknown {
  if (name === "parameters") return ctx.parameters;
  if (name.startsWith("parameters.")) {
    const value = pathValue(ctx.parameters, name.slice("parameters.".length));
    if (value === undefined) throw new MissingPlaceholder(`the command needs parameters.${name.slice("parameters.".length)}`);
    return value;
  }
  if (name === "device" || name === "command" || name === "id" || name === "n" || name === "agent") return ctx[name];
  throw new MissingPlaceholder(`unknown placeholder {${name}}`);
}

const WHOLE = /^\{([a-z][a-z0-9_.]*)\}$/;
const INSIDE = /\{([a-z][a-z0-9_.]*)\}/g;

function interpolate(text: string, ctx: CommandContext): string {
  return text.replace(INSIDE, (_, name: string) => {
    const value = placeholder(name, ctx);
    return typeof value === "object" ? JSON.stringify(value) : String(value);
  });
}

export function fillTemplate(template: unknown, ctx: CommandContext): unknown {
  if (typeof template === "string") {
    const whole = WHOLE.exec(template);
    return whole ? placeholder(whole[1] as string, ctx) : interpolate(template, ctx);
  }
  if (Array.isArray(template)) return template.map((t) => fillTemplate(t, ctx));
  if (typeof template === "object" && template !== null) {
    return Object.fromEntries(Object.entries(template).map(([k, v]) => [k, fillTemplate(v, ctx)]));
  }
  return template;
}

/** The topic and payload of a command, or undefined when no entry of the adapter takes it. */
export function commandMessage(spec: AdapterSpec, ctx: CommandContext): { topic: string; payload: string } | undefined {
  const entry = spec.commands.find((c) => c.command === "*" || c.command === ctx.command);
  if (!entry) return undefined;
  const topic = interpolate(entry.topic, ctx);
  if (topic.includes("+") || topic.includes("#") || topic.split("/").some((l) => l === ""))
    throw new MissingPlaceholder(`the command's topic "${topic.slice(0, 100)}" is not a topic to publish to`);
  const filled = fillTemplate(entry.payload, ctx);
  const payload = entry.format === "json" ? JSON.stringify(filled) : typeof filled === "object" ? JSON.stringify(filled) : String(filled);
  return { topic, payload };
}

/** The device type inferred from its readings (the spec's `types`, first match), else its default. */
export function inferType(spec: AdapterSpec, readings: readonly string[]): string {
  for (const rule of spec.types) {
    if (rule.any.some((pattern) => readings.some((name) => nameMatches(pattern, name)))) return rule.type;
  }
  return spec.default_type;
}
