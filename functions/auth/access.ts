/**
 * Cloudflare Access: when ACCESS_AUD and ACCESS_TEAM_DOMAIN are set, a request carrying
 * `Cf-Access-Jwt-Assertion` is a person Access let through. The assertion is checked with jose
 * against the team's keys (RS256 only), the audience tag and the team domain as issuer; the role
 * comes from ACCESS_ADMINS / ACCESS_OPERATORS or ACCESS_DEFAULT_ROLE.
 */
import { createLocalJWKSet, createRemoteJWKSet, type JWTVerifyGetKey, jwtVerify } from "jose";
import { type Role, Role as RoleSchema, TokenError } from "./tokens";

export interface AccessConfig {
  ACCESS_AUD?: string;
  ACCESS_TEAM_DOMAIN?: string;
  ACCESS_JWKS?: string;
  ACCESS_DEFAULT_ROLE?: string;
  ACCESS_ADMINS?: string;
  ACCESS_OPERATORS?: string;
}

let cachedKeys: { source: string; keys: JWTVerifyGetKey } | undefined;

function keys(config: AccessConfig, team: string): JWTVerifyGetKey {
  const source = config.ACCESS_JWKS ?? team;
  if (cachedKeys?.source === source) return cachedKeys.keys;
  const found = config.ACCESS_JWKS
    ? createLocalJWKSet(JSON.parse(config.ACCESS_JWKS))
    : createRemoteJWKSet(new URL(`${team}/cdn-cgi/access/certs`));
  cachedKeys = { source, keys: found };
  return found;
}

const list = (value: string | undefined) =>
  (value ?? "")
    .split(",")
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);

export function accessConfigured(config: AccessConfig): boolean {
  return Boolean(config.ACCESS_AUD && config.ACCESS_TEAM_DOMAIN);
}

export async function verifyAccessAssertion(config: AccessConfig, assertion: string): Promise<{ sub: string; role: Role; exp: number }> {
  const team = (config.ACCESS_TEAM_DOMAIN ?? "").replace(/\/+$/, "");
  try {
    const { payload } = await jwtVerify(assertion, keys(config, team), {
      algorithms: ["RS256"],
      audience: config.ACCESS_AUD,
      issuer: team,
      requiredClaims: ["exp"],
    });
    const email = typeof payload.email === "string" ? payload.email.toLowerCase() : (payload.sub ?? "");
    const role: Role = list(config.ACCESS_ADMINS).includes(email)
      ? "admin"
      : list(config.ACCESS_OPERATORS).includes(email)
        ? "operator"
        : RoleSchema.catch("viewer").parse(config.ACCESS_DEFAULT_ROLE ?? "viewer");
    return { sub: email || "access-user", role, exp: payload.exp ?? 0 };
  } catch (error) {
    if ((error as { code?: string }).code === "ERR_JWT_EXPIRED") throw new TokenError("expired", "the Access assertion expired");
    throw new TokenError("invalid", `the Access assertion is not valid: ${(error as Error).message}`);
  }
}
