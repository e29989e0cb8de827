/**
 * The record of issued login tokens: admins list them and revoke one; the refresh grant refuses
 * a revoked one. Tokens are JWTs, so the record keeps only their id (the jti claim), never the
 * token. A revoked person keeps their current access token until it expires
 * (ACCESS_TOKEN_TTL_SECONDS, 15 minutes by default); no refresh after that.
 */
import { decodeJwt } from "jose";
import type { IssuedToken } from "../shared/schemas/api/auth";

/** A row of login_tokens, as GET /v1/auth/tokens answers it (shared/schemas/api/auth.ts). */
export type LoginTokenRecord = IssuedToken;

/** The jti of a token this edge signed (already verified by the caller). */
export function tokenId(token: string): string | undefined {
  const jti = decodeJwt(token).jti;
  return typeof jti === "string" ? jti : undefined;
}

export async function recordIssued(
  env: Env,
  token: string,
  record: Omit<LoginTokenRecord, "id" | "revoked_at">,
): Promise<string | undefined> {
  const id = tokenId(token);
  if (!id) return undefined;
  await env.DB.prepare("INSERT INTO login_tokens (id, sub, role, issued_by, issued_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)")
    .bind(id, record.sub, record.role, record.issued_by, record.issued_at, record.expires_at)
    .run();
  return id;
}

export async function isRevoked(env: Env, token: string): Promise<boolean> {
  const id = tokenId(token);
  if (!id) return false;
  const row = await env.DB.prepare("SELECT revoked_at FROM login_tokens WHERE id = ?").bind(id).first<{ revoked_at: string | null }>();
  return row?.revoked_at != null;
}

export async function listIssued(env: Env, limit: number): Promise<LoginTokenRecord[]> {
  const { results } = await env.DB.prepare("SELECT * FROM login_tokens ORDER BY issued_at DESC, id LIMIT ?")
    .bind(limit)
    .all<LoginTokenRecord>();
  return results;
}

/** Revokes one; false when there is no such token. Revoking twice keeps the first time. */
export async function revoke(env: Env, id: string): Promise<LoginTokenRecord | undefined> {
  await env.DB.prepare("UPDATE login_tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?")
    .bind(new Date().toISOString(), id)
    .run();
  return (await env.DB.prepare("SELECT * FROM login_tokens WHERE id = ?").bind(id).first<LoginTokenRecord>()) ?? undefined;
}
