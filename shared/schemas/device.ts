/** Devices and services: the principals that publish, their profile and their permissions. */
import { z } from "zod";
import { findExchange } from "../bus/topology";
import { KEY_PROBLEM_MESSAGES, patternProblem } from "../topics";
import { Device, DeviceClass, DeviceKind, Rate } from "./api/device";
import { DeviceId, Metadata } from "./message";

/**
 * A publish permission: `exchange:pattern`, the pattern in AMQP topic syntax over routing keys
 * (`sensors:sensors.temperature.*`). Exchange names contain dots, so the colon separates.
 */
export const PublishPermission = z.string().superRefine((value, ctx) => {
  const colon = value.indexOf(":");
  if (colon <= 0) {
    ctx.addIssue({ code: "custom", message: "must be exchange:pattern, for example sensors:sensors.temperature.*" });
    return;
  }
  const exchange = value.slice(0, colon);
  if (!findExchange(exchange)) ctx.addIssue({ code: "custom", message: `unknown exchange "${exchange}"` });
  if (exchange === "dead.letter") ctx.addIssue({ code: "custom", message: "only the edge publishes to dead.letter" });
  const problem = patternProblem(value.slice(colon + 1));
  if (problem) ctx.addIssue({ code: "custom", message: `pattern ${KEY_PROBLEM_MESSAGES[problem]}` });
});

export const Slug = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, {
  message: "must be 1-64 characters of a-z, 0-9, _ and -, starting with a letter or digit",
});

export { DeviceClass, DeviceKind };

/**
 * The sources of edgemesh's own messages (the automation clock, the automation engine, the alert
 * manager, the inference consumer). Consumers trust a message by its source, so no device may
 * take one of these ids.
 */
export const RESERVED_DEVICE_IDS = ["scheduler", "automations", "alert-manager", "ai-inference", "edgemesh", "system"] as const;
const reserved: ReadonlySet<string> = new Set(RESERVED_DEVICE_IDS);
/** A new device's id: a device id that is not one of edgemesh's own sources. */
export const NewDeviceId = DeviceId.refine((id) => !reserved.has(id), {
  message: `is reserved for edgemesh's own messages (${RESERVED_DEVICE_IDS.join(", ")})`,
});

export const DeviceCreate = z.strictObject({
  id: NewDeviceId,
  kind: DeviceKind.default("device"),
  name: z.string().min(1).max(128).optional(),
  type: Slug,
  class: DeviceClass.default("mains"),
  room: Slug.optional(),
  metadata: Metadata.default({}),
  publish: z.array(PublishPermission).max(64).optional(),
  /** Messages per second the device may send, and the burst above it. */
  rate: z.strictObject({ per_second: z.number().positive().max(10_000), burst: z.int().positive().max(100_000) }).optional(),
});
export type DeviceCreate = z.infer<typeof DeviceCreate>;

/**
 * A device an agent registers on first sight (auto-provisioning, docs/devices.md): the edge sets
 * its kind, metadata.agent and permissions; the agent names it, its inferred type and where it came from.
 */
export const AgentDeviceProvision = z.strictObject({
  id: NewDeviceId,
  type: Slug,
  name: z.string().min(1).max(128).optional(),
  room: Slug.optional(),
  /** The ecosystem that saw it (zigbee2mqtt, tasmota, shelly, esphome, …). */
  ecosystem: Slug.optional(),
});
export type AgentDeviceProvision = z.infer<typeof AgentDeviceProvision>;

export const DevicePatch = DeviceCreate.omit({ id: true, kind: true }).partial().extend({ room: Slug.nullable().optional() });
export type DevicePatch = z.infer<typeof DevicePatch>;

/** A device as the registry returns it: the answer schema (shared/schemas/api/device.ts). */
export { Device, Rate };

/**
 * Least privilege by default: a device may publish its own type's readings (any location) and
 * events about itself; a service may publish nothing until it is given permissions.
 */
export function defaultPublish(kind: z.infer<typeof DeviceKind>, id: string, type: string): string[] {
  if (kind === "service") return [];
  return [`sensors:sensors.${type}.*`, `home.events:home.*.${id}.*`];
}
