/** What the live WebSocket (/v1/live, docs/live.md) sends its clients; what clients send is in ../live.ts. */
import { z } from "zod";

export const LiveStream = z.enum(["twin", "availability", "command", "dead_letter", "alert"]);
export type LiveStream = z.infer<typeof LiveStream>;

/** An update as a publisher hands it to a hub; the hub adds the sequence number. */
export const HubUpdate = z.object({
  stream: LiveStream,
  device: z.string().optional(),
  routing_key: z.string().optional(),
  at: z.string(),
  data: z.record(z.string(), z.unknown()),
});
export type HubUpdate = z.infer<typeof HubUpdate>;

/** An update as a client receives it: the hub's sequence number added. */
export const LiveUpdate = HubUpdate.extend({ type: z.literal("update").optional(), seq: z.int().nonnegative() });
export type LiveUpdate = z.infer<typeof LiveUpdate>;

/** What a hub sends a client besides updates (docs/live.md); the snapshot's devices as the hub keeps them. */
export const LiveServerMessage = z.union([
  LiveUpdate.extend({ type: z.literal("update") }),
  z.object({ type: z.literal("snapshot"), seq: z.number(), devices: z.record(z.string(), z.unknown()).optional() }),
  z.object({ type: z.literal("coalesced"), seq: z.number(), updates: z.array(LiveUpdate) }),
  z.object({ type: z.literal("resumed"), seq: z.number() }),
  z.object({ type: z.literal("error"), code: z.string(), message: z.string() }),
  z.object({ type: z.literal("pong") }),
]);
export type LiveServerMessage = z.infer<typeof LiveServerMessage>;
