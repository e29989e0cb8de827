/** The live WebSocket protocol (docs/live.md): what clients send, what hubs publish. */
import { z } from "zod";
import { patternProblem } from "../topics";
import { LiveStream } from "./api/live";
import { DeviceId } from "./message";

export { HubUpdate, LiveServerMessage, LiveStream, LiveUpdate } from "./api/live";

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
