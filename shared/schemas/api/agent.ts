/** What the edge answers the LAN agent (functions/routes/agent.ts, docs/agent.md). */
import { z } from "zod";
import { Issue } from "./common.ts";
import { DeliveredCommand } from "./twin.ts";

/** The outcome of one message of a batch, in the batch's order. */
export const AgentResult = z.discriminatedUnion("status", [
  z.object({ status: z.literal("stored"), id: z.string() }),
  z.object({ status: z.literal("rejected"), id: z.string().optional(), code: z.string(), issues: z.array(Issue) }),
  z.object({ status: z.literal("retry"), code: z.string(), message: z.string(), retry_after_s: z.number().optional() }),
]);
export type AgentResult = z.infer<typeof AgentResult>;

/** POST /v1/agent/messages. */
export const AgentBatchAnswer = z.object({ agent: z.string(), results: z.array(AgentResult) });
export type AgentBatchAnswer = z.infer<typeof AgentBatchAnswer>;

export const DesiredState = z.object({ version: z.number(), state: z.record(z.string(), z.unknown()) });
export type DesiredState = z.infer<typeof DesiredState>;

/** GET /v1/agent/devices/:id/commands. */
export const AgentCommandsAnswer = z.object({
  device: z.string().optional(),
  commands: z.array(DeliveredCommand),
  desired: DesiredState,
});
export type AgentCommandsAnswer = z.infer<typeof AgentCommandsAnswer>;
