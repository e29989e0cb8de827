/** What the edge sends the LAN agent over its WebSocket (`GET /v1/agent/stream`, docs/agent.md). */
import { z } from "zod";
import { DeviceId } from "./message.ts";

export const AgentWake = z.discriminatedUnion("type", [
  /** Sent once when the socket opens: the agent fetches every device's commands then (it may have missed wake-ups). */
  z.strictObject({ type: z.literal("hello"), at: z.iso.datetime() }),
  /** A device the agent carries has commands waiting or a new desired state. */
  z.strictObject({ type: z.literal("wake"), device: DeviceId, reason: z.enum(["commands", "desired"]) }),
]);
export type AgentWake = z.infer<typeof AgentWake>;
