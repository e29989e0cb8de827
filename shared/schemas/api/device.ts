/** What the edge answers about devices and rooms (docs/api.md). */
import { z } from "zod";
import { Availability } from "./common.ts";
import { MetricAggregate } from "./twin.ts";

export const DeviceKind = z.enum(["device", "service"]);
export const DeviceClass = z.enum(["mains", "battery"]);
export const Rate = z.object({ per_second: z.number(), burst: z.number() });

/** A device as the registry returns it; never carries the credential or its hash. */
export const Device = z.object({
  id: z.string(),
  kind: DeviceKind,
  name: z.string().nullable(),
  type: z.string(),
  class: DeviceClass,
  room: z.string().nullable(),
  metadata: z.record(z.string(), z.unknown()),
  publish: z.array(z.string()),
  rate: Rate,
  created_at: z.string(),
  updated_at: z.string(),
  token_rotated_at: z.string(),
  /** As last written by the twin; GET /v1/devices/:id/twin has the live value. */
  availability: Availability,
  last_seen: z.string().nullable(),
});
export type Device = z.infer<typeof Device>;

/** GET /v1/devices: a page, `next` the id to continue after. */
export const DeviceList = z.object({ devices: z.array(Device), next: z.string().nullable() });
export type DeviceList = z.infer<typeof DeviceList>;

/** POST /v1/devices and POST /v1/devices/:id/token: the token is shown this once. */
export const DeviceWithToken = z.object({ device: Device, token: z.string(), note: z.string() });
export type DeviceWithToken = z.infer<typeof DeviceWithToken>;

export const Room = z.object({
  id: z.string(),
  name: z.string().nullable(),
  metadata: z.record(z.string(), z.unknown()),
  created_at: z.string(),
});
export type Room = z.infer<typeof Room>;

/** GET /v1/rooms: each room with how many devices it holds. */
export const RoomListItem = Room.extend({ devices: z.number() });
export type RoomListItem = z.infer<typeof RoomListItem>;

/** GET /v1/rooms/:id. */
export const RoomView = z.object({ room: Room, devices: z.array(Device), aggregates: z.array(MetricAggregate) });
export type RoomView = z.infer<typeof RoomView>;
