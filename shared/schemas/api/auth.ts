/** What POST /v1/auth/token answers (docs/auth.md). */
import { z } from "zod";
import { Role } from "./common.ts";

export const AccessAnswer = z.object({
  access_token: z.string(),
  token_type: z.literal("Bearer").optional(),
  expires_in: z.number(),
  /** Seconds since the epoch. */
  expires_at: z.number(),
  sub: z.string(),
  role: Role,
  refresh_token: z.string().optional(),
});
export type AccessAnswer = z.infer<typeof AccessAnswer>;
