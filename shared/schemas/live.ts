/** The live WebSocket protocol (docs/live.md): what clients send, what hubs publish. */
import { z } from "zod";
import { patternProblem } from "../topics";
import { DeviceId } from "./message";

export const LiveStream = z.enum(["twin", "availability", "command", "dead_letter", "alert"]);
export type LiveStream = z.infer<typeof LiveStream>;

const Pattern = z.string().refine((p) => patternProblem(p) === undefined, { message: "not a routing-key pattern" });

// Bounded so a socket's subscription fits its hibernation attachment (2 KB).
const Selection = {
  devices: z.array(DeviceId).max(40).optional(),
  patterns: z.array(Pattern).max(10).optional(),
  streams: z.array(LiveStream).max(5).optional(),
};

export const LiveClientMessage = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("subscribe"), ...Selection }),
  z.strictObject({ type: z.literal("unsubscribe"), ...Selection }),
  z.strictObject({ type: z.literal("resume"), after: z.int().nonnegative() }),
  z.strictObject({ type: z.literal("ack"), seq: z.int().nonnegative() }),
  z.strictObject({ type: z.literal("ping") }),
]);
export type LiveClientMessage = z.infer<typeof LiveClientMessage>;

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
