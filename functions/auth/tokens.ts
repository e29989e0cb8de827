/**
 * The edge's own JWTs (jose): short-lived access tokens and longer refresh (login) tokens, both
 * HS256 with JWT_SECRET. Verification allows HS256 only and checks expiry, not-before, issuer,
 * audience and the token's kind, so one kind can never pass for the other.
 */
import { errors, jwtVerify, SignJWT } from "jose";
import { z } from "zod";
import { Role } from "../../shared/schemas/api/common";

export const ISSUER = "edgemesh";
export const ACCESS_AUDIENCE = "edgemesh-api";
export const REFRESH_AUDIENCE = "edgemesh-refresh";
const ALGORITHMS = ["HS256"];

export { Role };

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };
export function roleAllows(have: Role, need: Role): boolean {
  return RANK[have] >= RANK[need];
}

const Claims = z.object({ sub: z.string().min(1).max(128), role: Role, typ: z.enum(["access", "refresh"]), exp: z.number() });
export type Claims = z.infer<typeof Claims>;

export class TokenError extends Error {
  override name = "TokenError";
  constructor(
    readonly reason: "expired" | "invalid",
    message: string,
  ) {
    super(message);
  }
}

function key(secret: string | undefined): Uint8Array {
  if (!secret || secret.length < 32) {
    throw new TokenError(
      "invalid",
      "JWT_SECRET is not set or shorter than 32 characters: `wrangler secret put JWT_SECRET` (or .dev.vars locally)",
    );
  }
  return new TextEncoder().encode(secret);
}

export async function issueToken(
  secret: string | undefined,
  claims: { sub: string; role: Role; typ: "access" | "refresh" },
  ttlSeconds: number,
): Promise<{ token: string; exp: number }> {
  const now = Math.floor(Date.now() / 1000);
  const exp = now + ttlSeconds;
  const token = await new SignJWT({ role: claims.role, typ: claims.typ })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(claims.sub)
    .setIssuer(ISSUER)
    .setAudience(claims.typ === "access" ? ACCESS_AUDIENCE : REFRESH_AUDIENCE)
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(exp)
    .setJti(crypto.randomUUID())
    .sign(key(secret));
  return { token, exp };
}

export async function verifyToken(secret: string | undefined, token: string, typ: "access" | "refresh"): Promise<Claims> {
  try {
    const { payload } = await jwtVerify(token, key(secret), {
      algorithms: ALGORITHMS,
      issuer: ISSUER,
      audience: typ === "access" ? ACCESS_AUDIENCE : REFRESH_AUDIENCE,
      requiredClaims: ["exp", "nbf", "sub"],
    });
    const claims = Claims.safeParse(payload);
    if (!claims.success || claims.data.typ !== typ) throw new TokenError("invalid", `not an ${typ} token`);
    return claims.data;
  } catch (error) {
    if (error instanceof TokenError) throw error;
    if (error instanceof errors.JWTExpired) throw new TokenError("expired", "the token expired");
    throw new TokenError("invalid", `the token is not valid: ${(error as Error).message}`);
  }
}

/** Whether a bearer string looks like a JWT at all (three base64url parts). */
export function looksLikeJwt(token: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token);
}
