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

/** A login token an admin issued (GET /v1/auth/tokens, DELETE /v1/auth/tokens/:id; docs/auth.md). */
export const IssuedToken = z.object({
  id: z.string(),
  sub: z.string(),
  role: z.string(),
  issued_by: z.string(),
  issued_at: z.string(),
  expires_at: z.string(),
  revoked_at: z.string().nullable(),
});
export type IssuedToken = z.infer<typeof IssuedToken>;
export const IssuedTokensAnswer = z.object({ tokens: z.array(IssuedToken) });
export type IssuedTokensAnswer = z.infer<typeof IssuedTokensAnswer>;
export const RevokedTokenAnswer = z.object({ token: IssuedToken });
export type RevokedTokenAnswer = z.infer<typeof RevokedTokenAnswer>;
