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
export interface HubUpdate {
  stream: LiveStream;
  device?: string;
  routing_key?: string;
  at: string;
  data: Record<string, unknown>;
}
