/**
 * Home Assistant's controllable components for edgemesh devices (docs/homeassistant.md):
 * `switch`, `light`, `number`, `select`, `button` and `climate` discovery configs whose command
 * topics (`<state_base>/<device>/<control>/set`) the agent turns into edgemesh commands, and
 * whose state is the device's reading, so its reply (its reported state) closes the loop.
 * No I/O here: the configs, checked against zod schemas of Home Assistant's documented MQTT
 * schemas (full key names), and the command a payload from Home Assistant becomes.
 */
import { z } from "zod";
import { type BridgedDevice, HaDevice, haTopics, type MqttMessage } from "./ha-discovery.ts";

const Name = z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, { message: "must be a lowercase word (a-z, 0-9, _)" });
const ParamValue = z.union([z.string(), z.number(), z.boolean()]);

/**
 * A control: which command a Home Assistant entity sends and which reading is its state.
 * `parameters` is a template: a string that is exactly `{value}` becomes what Home Assistant
 * sent (through `values` when given, a number for number and climate), `{value}` inside longer
 * strings is interpolated.
 */
export const HaControl = z.strictObject({
  /** The edgemesh device (in the agent config; a mapping file's controls apply to its devices). */
  device: z.string().min(1).max(64).optional(),
  component: z.enum(["switch", "light", "number", "select", "button", "climate"]),
  /** The reading that holds the state (the target temperature for climate); none for a button. */
  reading: Name.optional(),
  /** The entity's key under the device; defaults to the reading. */
  key: Name.optional(),
  name: z.string().min(1).max(128).optional(),
  command: Name,
  parameters: z.record(z.string(), z.unknown()).default({ value: "{value}" }),
  /** Home Assistant's payload → the value (`ON` → true). switch and light send ON / OFF, a button PRESS. */
  values: z.record(z.string(), ParamValue).optional(),
  min: z.number().optional(),
  max: z.number().optional(),
  step: z.number().positive().optional(),
  unit: z.string().min(1).max(16).optional(),
  /** select: the options. */
  options: z.array(z.string().min(1).max(64)).min(1).optional(),
  /** climate: the reading of the current temperature. */
  current: Name.optional(),
});
export type HaControl = z.infer<typeof HaControl>;

const Availability = {
  availability_topic: z.string().min(1),
  payload_available: z.string(),
  payload_not_available: z.string(),
};
const Common = {
  name: z.string().min(1),
  unique_id: z.string().regex(/^[a-zA-Z0-9_-]+$/),
  object_id: z.string().regex(/^[a-z0-9_]+$/),
  device: HaDevice,
  origin: z.strictObject({ name: z.string(), sw_version: z.string().optional() }),
  ...Availability,
};

/** Home Assistant's MQTT schemas for the components (https://www.home-assistant.io/integrations/<component>.mqtt/). */
export const HA_COMPONENT_SCHEMAS = {
  switch: z.strictObject({
    ...Common,
    command_topic: z.string().min(1),
    state_topic: z.string().min(1),
    value_template: z.string().min(1),
    payload_on: z.string(),
    payload_off: z.string(),
    state_on: z.string(),
    state_off: z.string(),
  }),
  light: z.strictObject({
    ...Common,
    schema: z.literal("basic"),
    command_topic: z.string().min(1),
    state_topic: z.string().min(1),
    state_value_template: z.string().min(1),
    payload_on: z.string(),
    payload_off: z.string(),
  }),
  number: z.strictObject({
    ...Common,
    command_topic: z.string().min(1),
    state_topic: z.string().min(1),
    value_template: z.string().min(1),
    min: z.number(),
    max: z.number(),
    step: z.number().positive(),
    unit_of_measurement: z.string().optional(),
  }),
  select: z.strictObject({
    ...Common,
    command_topic: z.string().min(1),
    state_topic: z.string().min(1),
    value_template: z.string().min(1),
    options: z.array(z.string()).min(1),
  }),
  button: z.strictObject({ ...Common, command_topic: z.string().min(1), payload_press: z.string() }),
  climate: z.strictObject({
    ...Common,
    modes: z.array(z.enum(["auto", "off", "cool", "heat", "dry", "fan_only", "heat_cool"])).min(1),
    temperature_command_topic: z.string().min(1),
    temperature_state_topic: z.string().min(1),
    temperature_state_template: z.string().min(1),
    current_temperature_topic: z.string().min(1).optional(),
    current_temperature_template: z.string().min(1).optional(),
    min_temp: z.number().optional(),
    max_temp: z.number().optional(),
    temp_step: z.number().positive().optional(),
    temperature_unit: z.enum(["C", "F"]).optional(),
  }),
} as const;

export const controlKey = (control: HaControl): string => control.key ?? control.reading ?? control.command;

/** Where Home Assistant publishes a control's commands. */
export const commandTopic = (device: string, key: string, base: string) => `${base}/${device}/${key}/set`;

const nodeId = (device: string) => device.replace(/[^a-zA-Z0-9_-]/g, "_");

/** The retained discovery config of each control of a device. */
export function controlMessages(
  device: BridgedDevice,
  controls: readonly HaControl[],
  options: { prefix: string; stateBase: string; haDevice: z.infer<typeof HaDevice>; version?: string },
): MqttMessage[] {
  const topics = haTopics(device.id, options.stateBase);
  return controls.map((control) => {
    const key = controlKey(control);
    const common = {
      name: control.name ?? key.replaceAll("_", " "),
      unique_id: `edgemesh_${nodeId(device.id)}_${key}`,
      object_id: `${device.id}_${key}`.toLowerCase().replace(/[^a-z0-9_]/g, "_"),
      device: options.haDevice,
      origin: { name: "edgemesh", ...(options.version && { sw_version: options.version }) },
      availability_topic: topics.availability,
      payload_available: "online",
      payload_not_available: "offline",
    };
    const command_topic = commandTopic(device.id, key, options.stateBase);
    const reading = control.reading ?? key;
    const onOff = `{{ 'ON' if value_json.${reading} else 'OFF' }}`;
    let config: unknown;
    switch (control.component) {
      case "switch":
        config = HA_COMPONENT_SCHEMAS.switch.parse({
          ...common,
          command_topic,
          state_topic: topics.state,
          value_template: onOff,
          payload_on: "ON",
          payload_off: "OFF",
          state_on: "ON",
          state_off: "OFF",
        });
        break;
      case "light":
        config = HA_COMPONENT_SCHEMAS.light.parse({
          ...common,
          schema: "basic",
          command_topic,
          state_topic: topics.state,
          state_value_template: onOff,
          payload_on: "ON",
          payload_off: "OFF",
        });
        break;
      case "number":
        config = HA_COMPONENT_SCHEMAS.number.parse({
          ...common,
          command_topic,
          state_topic: topics.state,
          value_template: `{{ value_json.${reading} }}`,
          min: control.min ?? 0,
          max: control.max ?? 100,
          step: control.step ?? 1,
          ...(control.unit && { unit_of_measurement: control.unit }),
        });
        break;
      case "select":
        config = HA_COMPONENT_SCHEMAS.select.parse({
          ...common,
          command_topic,
          state_topic: topics.state,
          value_template: `{{ value_json.${reading} }}`,
          options: control.options ?? [],
        });
        break;
      case "button":
        config = HA_COMPONENT_SCHEMAS.button.parse({ ...common, command_topic, payload_press: "PRESS" });
        break;
      case "climate":
        config = HA_COMPONENT_SCHEMAS.climate.parse({
          ...common,
          modes: ["heat"],
          temperature_command_topic: command_topic,
          temperature_state_topic: topics.state,
          temperature_state_template: `{{ value_json.${reading} }}`,
          ...(control.current && {
            current_temperature_topic: topics.state,
            current_temperature_template: `{{ value_json.${control.current} }}`,
          }),
          ...(control.min !== undefined && { min_temp: control.min }),
          ...(control.max !== undefined && { max_temp: control.max }),
          ...(control.step !== undefined && { temp_step: control.step }),
          temperature_unit: "C",
        });
        break;
    }
    return {
      topic: `${options.prefix}/${control.component}/${nodeId(device.id)}/${key}/config`,
      payload: JSON.stringify(config),
      retain: true,
    };
  });
}

export class ControlError extends Error {
  override name = "ControlError";
}

/** What Home Assistant sent on a command topic, as the edgemesh command of the control. */
export function commandFromHomeAssistant(control: HaControl, payload: string): { command: string; parameters: Record<string, unknown> } {
  const text = payload.trim();
  let value: unknown = text;
  if (control.values && text in control.values) value = control.values[text];
  else if (control.component === "number" || control.component === "climate") {
    const n = Number(text);
    if (text === "" || !Number.isFinite(n)) throw new ControlError(`"${text.slice(0, 40)}" is not a number`);
    if ((control.min !== undefined && n < control.min) || (control.max !== undefined && n > control.max))
      throw new ControlError(`${n} is outside ${control.min ?? "-∞"}..${control.max ?? "∞"}`);
    value = n;
  } else if (control.component === "select" && control.options && !control.options.includes(text)) {
    throw new ControlError(`"${text.slice(0, 40)}" is not one of the options`);
  } else if ((control.component === "switch" || control.component === "light") && text !== "ON" && text !== "OFF") {
    throw new ControlError(`"${text.slice(0, 40)}" is neither ON nor OFF`);
  }
  return { command: control.command, parameters: fill(control.parameters, value) as Record<string, unknown> };
}

function fill(template: unknown, value: unknown): unknown {
  if (template === "{value}") return value;
  if (typeof template === "string") return template.replaceAll("{value}", String(value));
  if (Array.isArray(template)) return template.map((t) => fill(t, value));
  if (typeof template === "object" && template !== null)
    return Object.fromEntries(Object.entries(template).map(([k, v]) => [k, fill(v, value)]));
  return template;
}
