/** What the edge answers about devices and rooms (docs/api.md). */
import { z } from "zod";
import { Device } from "../device.ts";
import { MetricAggregate } from "./twin.ts";

export { Device };

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
