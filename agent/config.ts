/**
 * The agent's configuration file (YAML), validated by one zod schema. Every error names the key
 * at fault (`mqtt.rules.0.device: …`), so a typo in agent.yaml is found without reading code.
 */

import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { parseDocument } from "yaml";
import { z } from "zod";
import { ConfigError } from "../shared/config-error.ts";
import { DeviceId, MessageType } from "../shared/schemas/message.ts";
import { KEY_PROBLEM_MESSAGES, routingKeyProblem } from "../shared/topics.ts";
import { type AdapterSpec, builtInAdapters, loadAdapterFile } from "./adapter-spec.ts";
import { HaControl } from "./ha-controls.ts";
import { HaEntityMapping } from "./ha-streams.ts";

const TopicTemplate = z
  .string()
  .min(1)
  .max(200)
  .refine((t) => t.includes("{device}"), { message: "must contain {device}" });

const Rule = z.strictObject({
  /** MQTT filter: `+` one level, `#` the rest. */
  topic: z.string().min(1).max(200),
  /** `{1}`, `{2}`… the `+` captures, `{#}` the `#` tail joined with dots. */
  routing_key: z.string().superRefine((key, ctx) => {
    const problem = routingKeyProblem(key.replace(/\{(\d+|#)\}/g, "x"));
    if (problem) ctx.addIssue({ code: "custom", message: `routing key ${KEY_PROBLEM_MESSAGES[problem]}` });
  }),
  /** The device the topic belongs to: a template like `{1}` or a fixed id (`heatpump`). */
  device: z.string().min(1).max(64),
  type: MessageType.extract(["telemetry", "metric", "event"]).default("telemetry"),
  qos: z.union([z.literal(0), z.literal(1)]).default(1),
});
export type AgentRule = z.infer<typeof Rule>;

const KafkaSource = z.strictObject({
  topic: z.string().regex(/^[A-Za-z0-9._-]{1,249}$/, { message: "must be a Kafka topic name" }),
  /** Routing key template: `{key}` is the record's key. */
  routing_key: z.string().min(1).max(255),
  /** Device id template: `{key}` (the default) or a fixed id. */
  device: z.string().min(1).max(64).default("{key}"),
  type: MessageType.extract(["telemetry", "metric", "event"]).default("telemetry"),
});
export type KafkaSourceConfig = z.infer<typeof KafkaSource>;

const HostPort = z.string().regex(/^[A-Za-z0-9.:[\]-]+:\d{1,5}$/, { message: "must be host:port, for example 127.0.0.1:9464" });

export const AgentConfig = z.strictObject({
  edge: z.strictObject({
    url: z.url({ protocol: /^https?$/, message: "must be an http(s) URL of the edge" }),
    /** The agent's own token (`<agent-id>.<secret>`), from a file or an environment variable. */
    token_file: z.string().min(1).optional(),
    token_env: z
      .string()
      .regex(/^[A-Z_][A-Z0-9_]*$/, { message: "must be an environment variable name" })
      .optional(),
    batch_max: z.int().min(1).max(500).default(200),
    gzip: z.boolean().default(true),
    timeout_s: z.number().positive().max(300).default(15),
    retry: z
      .strictObject({ initial_ms: z.int().min(10).default(500), max_ms: z.int().min(100).default(30_000) })
      .default({ initial_ms: 500, max_ms: 30_000 }),
  }),
  outbox: z.strictObject({
    path: z.string().min(1),
    max_messages: z.int().min(1).default(1_000_000),
    max_bytes: z
      .int()
      .min(1024)
      .default(512 * 1024 * 1024),
    /**
     * `backpressure`: stop taking messages until the edge drains the outbox (QoS 1 stays with the
     * broker, unacknowledged); `drop_oldest`: make room by deleting the oldest messages (counted).
     */
    when_full: z.enum(["backpressure", "drop_oldest"]).default("backpressure"),
    /** SQLite synchronous mode: `full` survives power loss, `normal` survives a crash of the agent. */
    sync: z.enum(["full", "normal"]).default("full"),
  }),
  mqtt: z.strictObject({
    url: z.url({ protocol: /^mqtts?$/, message: "must be an mqtt:// or mqtts:// URL" }),
    client_id: z.string().min(1).max(64).default("edgemesh-agent"),
    username: z.string().optional(),
    password_env: z.string().optional(),
    /** Topic rules; may be empty when adapters carry every device. */
    rules: z.array(Rule).default([]),
    /** Devices the agent expects; a mapped topic naming another device is reported as unknown. */
    devices: z.array(DeviceId).optional(),
    commands: z
      .strictObject({
        set_topic: TopicTemplate.default("homelab/{device}/set"),
        /** `parameters`: Zigbee2MQTT style, the command's parameters alone; `envelope`: {id, command, parameters}. */
        payload: z.enum(["parameters", "envelope"]).default("envelope"),
        /** Where devices answer; without it a command succeeds once the broker took the publish. */
        result_topic: TopicTemplate.optional(),
        result_timeout_s: z.number().positive().max(3600).default(30),
        /** Also publish the twin's desired state to the set topic when it changes (and once after a start). */
        desired: z.boolean().default(true),
      })
      .prefault({}),
    availability_topic: TopicTemplate.optional(),
  }),
  /** Adapters as data (docs/devices.md): the built-in mapping files to use, the user's own, auto-provisioning. */
  adapters: z
    .strictObject({
      /** Built-in ecosystems (agent/adapters/<name>.yaml): zigbee2mqtt, tasmota, shelly, esphome. */
      enabled: z.array(z.string().min(1).max(64)).default([]),
      /** The user's own mapping files (relative to this file), in the same format. */
      files: z.array(z.string().min(1).max(500)).default([]),
      /** Register a device seen through an adapter on the edge on first sight when its id matches (`*` any run). */
      provision: z.strictObject({ allow: z.array(z.string().min(1).max(64)).min(1) }).optional(),
    })
    .optional(),
  /** Home Assistant on the same broker (optional, docs/homeassistant.md). */
  homeassistant: z
    .strictObject({
      /** Publish MQTT discovery configs and state for every bridged device. */
      discovery: z.boolean().default(true),
      discovery_prefix: z.string().min(1).max(100).default("homeassistant"),
      /** Where the agent keeps each device's state and availability: `<state_base>/<device>/state`. */
      state_base: z.string().min(1).max(100).default("edgemesh"),
      /** Also show the edge-native devices an admin marked with metadata.homeassistant_agent = this agent. */
      edge_devices: z.boolean().default(false),
      edge_poll_s: z.int().min(5).max(3600).default(30),
      /** Controllable entities (switch, light, number, select, button, climate) whose commands become edgemesh commands. */
      controls: z
        .array(HaControl.required({ device: true }))
        .max(1000)
        .default([]),
      /** Home Assistant's mqtt_statestream into readings of edgemesh devices. */
      statestream: z.strictObject({ base_topic: z.string().min(1).max(200), entities: z.array(HaEntityMapping).min(1) }).optional(),
      /** Home Assistant's mqtt_eventstream into events of one edgemesh device (Home Assistant itself). */
      eventstream: z
        .strictObject({
          topic: z.string().min(1).max(200).default("homeassistant/events"),
          device: DeviceId,
          room: z
            .string()
            .regex(/^[a-z0-9_-]{1,64}$/)
            .default("house"),
        })
        .optional(),
    })
    .optional(),
  /** Kafka/Redpanda on the LAN (optional): sources consumed in a group, offsets committed after the edge acknowledged. */
  kafka: z
    .strictObject({
      brokers: z.array(z.string().regex(/^[A-Za-z0-9.[\]:-]+:\d{1,5}$/, { message: "must be host:port" })).min(1),
      client_id: z.string().min(1).max(64).default("edgemesh-agent"),
      group_id: z.string().min(1).max(128).default("edgemesh-agent"),
      sources: z.array(KafkaSource).min(1),
      /** Commands the agent delivers are also produced here, for local consumers. */
      commands_topic: z
        .string()
        .regex(/^[A-Za-z0-9._-]{1,249}$/, { message: "must be a Kafka topic name" })
        .optional(),
    })
    .optional(),
  health: z.strictObject({ listen: HostPort.default("127.0.0.1:9464") }).prefault({}),
  log: z.strictObject({ level: z.enum(["debug", "info", "warn", "error"]).default("info") }).prefault({}),
});
export type AgentConfig = z.infer<typeof AgentConfig>;

export { ConfigError };

function pathOf(path: readonly PropertyKey[]): string {
  return path.map(String).join(".") || "(top level)";
}

/** Parses YAML text into a validated config; relative paths are taken from `baseDir`. */
export function parseConfig(text: string, baseDir = process.cwd()): AgentConfig {
  const document = parseDocument(text, { prettyErrors: true });
  if (document.errors.length > 0) throw new ConfigError(document.errors.map((e) => e.message).join("\n"));
  const result = AgentConfig.safeParse(document.toJS());
  if (!result.success) {
    throw new ConfigError(result.error.issues.map((i) => `${pathOf(i.path)}: ${i.message}`).join("\n"));
  }
  const config = result.data;
  if (config.mqtt.rules.length === 0 && !config.adapters && !config.homeassistant?.statestream)
    throw new ConfigError("mqtt.rules: give at least one rule, or use adapters");
  if (config.adapters) {
    const known = builtInAdapters();
    config.adapters.enabled.forEach((name, i) => {
      if (!known.has(name)) throw new ConfigError(`adapters.enabled.${i}: no built-in adapter "${name}" (${[...known.keys()].join(", ")})`);
    });
    config.adapters.files = config.adapters.files.map((f) => resolve(baseDir, f));
    config.adapters.files.forEach((file, i) => {
      try {
        loadAdapterFile(file);
      } catch (error) {
        throw new ConfigError(`adapters.files.${i}: ${(error as Error).message}`);
      }
    });
  }
  if (!config.edge.token_file && !config.edge.token_env) throw new ConfigError("edge: set token_file or token_env (the agent's token)");
  config.outbox.path = resolve(baseDir, config.outbox.path);
  if (config.edge.token_file) config.edge.token_file = resolve(baseDir, config.edge.token_file);
  return config;
}

export function loadConfig(file: string): AgentConfig {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new ConfigError(`cannot read ${file}: ${(error as Error).message}`);
  }
  return parseConfig(text, dirname(resolve(file)));
}

/** Reads the agent's token where the config says it is. */
export function readToken(config: AgentConfig): string {
  let token: string;
  try {
    token = config.edge.token_file
      ? readFileSync(config.edge.token_file, "utf8").trim()
      : (process.env[config.edge.token_env ?? ""] ?? "").trim();
  } catch (error) {
    throw new ConfigError(`edge.token_file: cannot read ${config.edge.token_file}: ${(error as Error).message}`);
  }
  if (!/^[a-z0-9][a-z0-9_-]{0,63}\..{16,}$/.test(token))
    throw new ConfigError(`edge.${config.edge.token_file ? "token_file" : "token_env"}: no agent token (<agent-id>.<secret>) found there`);
  return token;
}

/** The adapters the config names: built-in ones, then the user's files (a user file may replace a built-in ecosystem). */
export function adapterSpecs(config: AgentConfig): AdapterSpec[] {
  if (!config.adapters) return [];
  const known = builtInAdapters();
  const specs = new Map<string, AdapterSpec>();
  for (const name of config.adapters.enabled) specs.set(name, known.get(name) as AdapterSpec);
  for (const file of config.adapters.files) {
    const spec = loadAdapterFile(file);
    specs.set(spec.ecosystem, spec);
  }
  return [...specs.values()];
}
