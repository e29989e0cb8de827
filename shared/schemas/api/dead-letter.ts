/** What GET /v1/dead-letters and POST /v1/dead-letters/replay answer (docs/dead-letters.md). */
import { z } from "zod";

export const DeadLetterStatus = z.enum(["pending", "replayed"]);

export const DeadLetter = z.object({
  id: z.number(),
  message_id: z.string(),
  queue: z.string(),
  exchange: z.string(),
  routing_key: z.string(),
  error: z.object({ code: z.string(), message: z.string() }),
  attempts: z.number(),
  failed_at: z.string(),
  status: DeadLetterStatus,
  /** When it was last replayed; null while pending. */
  replayed_at: z.string().nullable(),
  /** Whether a valid message was kept, so that a replay can send it again. */
  replayable: z.boolean(),
  /** The message as it failed: its envelope, or whatever the queue held when it was none (then not replayable). */
  message: z.union([z.looseObject({ source: z.string().optional(), type: z.string().optional() }), z.json()]),
});
export type DeadLetter = z.infer<typeof DeadLetter>;

/** The device or service that sent a dead letter's message, when the message says. */
export function sourceOf(letter: Pick<DeadLetter, "message">): string | undefined {
  const message = letter.message;
  const source = message !== null && typeof message === "object" && !Array.isArray(message) ? message.source : undefined;
  return typeof source === "string" ? source : undefined;
}

export const DeadLetterList = z.object({
  dead_letters: z.array(DeadLetter),
  total: z.number(),
  next_before: z.number().nullable(),
});
export type DeadLetterList = z.infer<typeof DeadLetterList>;

export const ReplayAnswer = z.object({
  replayed: z.number(),
  replayed_ids: z.array(z.number()),
  still_unroutable: z.array(z.number()),
  not_replayable: z.array(z.number()),
  failed: z.array(z.number()),
  pending: z.number(),
});
export type ReplayAnswer = z.infer<typeof ReplayAnswer>;
