/** JWTs and roles: algorithm, expiry, not-before, audience, issuer, kind; Cloudflare Access. */
import { env } from "cloudflare:workers";
import { importJWK, SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { ADMIN, call, createDevice, json, tokenFor, uniqueId, uniqueIp } from "./helpers";

const SECRET = new TextEncoder().encode("test-jwt-secret-at-least-32-characters-long");
const tokenPost = (body: unknown, headers: Record<string, string> = {}) =>
  call("/v1/auth/token", {
    method: "POST",
    headers: { "content-type": "application/json", "cf-connecting-ip": uniqueIp(), ...headers },
    body: JSON.stringify(body),
  });
const bearer = (token: string) => ({ authorization: `Bearer ${token}`, "cf-connecting-ip": uniqueIp() });

async function forge(
  claims: Record<string, unknown>,
  options: { alg?: string; key?: Uint8Array; aud?: string; iss?: string; exp?: number; nbf?: number } = {},
) {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ role: "admin", typ: "access", ...claims })
    .setProtectedHeader({ alg: options.alg ?? "HS256" })
    .setSubject("mallory")
    .setIssuer(options.iss ?? "edgemesh")
    .setAudience(options.aud ?? "edgemesh-api")
    .setIssuedAt(now)
    .setNotBefore(options.nbf ?? now)
    .setExpirationTime(options.exp ?? now + 600)
    .sign(options.key ?? SECRET);
}

describe("POST /v1/auth/token", () => {
  it("exchanges the admin token for an access and a refresh token, and refreshes", async () => {
    const res = await tokenPost({ grant_type: "admin_token", admin_token: "test-admin-token" });
    expect(res.status).toBe(200);
    const body = await json<{ access_token: string; refresh_token: string; expires_in: number; role: string }>(res);
    expect(body).toMatchObject({ token_type: "Bearer", expires_in: 900, role: "admin", sub: "admin" });
    expect((await call("/v1/devices", { headers: bearer(body.access_token) })).status).toBe(200);
    const refreshed = await tokenPost({ grant_type: "refresh_token", refresh_token: body.refresh_token });
    expect(refreshed.status).toBe(200);
    expect((await json<{ role: string }>(refreshed)).role).toBe("admin");
  });

  it("keeps access and refresh tokens apart", async () => {
    const { access_token, refresh_token } = await json<{ access_token: string; refresh_token: string }>(
      await tokenPost({ grant_type: "admin_token", admin_token: "test-admin-token" }),
    );
    expect((await call("/v1/devices", { headers: bearer(refresh_token) })).status).toBe(401);
    expect((await tokenPost({ grant_type: "refresh_token", refresh_token: access_token })).status).toBe(401);
  });

  it("refuses a wrong admin token, a bad grant, and issuing without the admin role", async () => {
    expect((await tokenPost({ grant_type: "admin_token", admin_token: "nope" })).status).toBe(401);
    const bad = await tokenPost({ grant_type: "password" });
    expect(bad.status).toBe(400);
    expect(await json(bad)).toMatchObject({ error: { code: "invalid_payload", issues: [{ path: "grant_type" }] } });
    const operator = await tokenFor("operator");
    expect((await tokenPost({ grant_type: "issue", sub: "eve", role: "admin" }, { authorization: `Bearer ${operator}` })).status).toBe(403);
  });
});

describe("JWT verification", () => {
  it.each([
    ["another algorithm (HS512)", () => forge({}, { alg: "HS512" })],
    ["another key", () => forge({}, { key: new TextEncoder().encode("some-other-secret-that-is-long-enough!!") })],
    ["another audience", () => forge({}, { aud: "someone-else" })],
    ["another issuer", () => forge({}, { iss: "not-edgemesh" })],
    ["expired", () => forge({}, { exp: Math.floor(Date.now() / 1000) - 10 })],
    ["not yet valid", () => forge({}, { nbf: Math.floor(Date.now() / 1000) + 600 })],
    ["a refresh token", () => forge({ typ: "refresh" }, { aud: "edgemesh-api" })],
    ["an unknown role", () => forge({ role: "root" })],
  ])("refuses %s with 401", async (_name, make) => {
    const res = await call("/v1/devices", { headers: bearer(await make()) });
    expect(res.status).toBe(401);
    expect((await json<{ error: { code: string } }>(res)).error.code).toBe("unauthorized");
  });

  it("refuses alg none", async () => {
    const header = btoa(JSON.stringify({ alg: "none", typ: "JWT" })).replace(/=+$/, "");
    const payload = btoa(
      JSON.stringify({ sub: "x", role: "admin", typ: "access", iss: "edgemesh", aud: "edgemesh-api", exp: 9_999_999_999, nbf: 0 }),
    ).replace(/=+$/, "");
    expect((await call("/v1/devices", { headers: bearer(`${header}.${payload}.`) })).status).toBe(401);
  });

  it("says an expired token expired, so the dashboard refreshes", async () => {
    const res = await call("/v1/devices", { headers: bearer(await forge({}, { exp: Math.floor(Date.now() / 1000) - 10 })) });
    expect(await json(res)).toMatchObject({ reason: "expired" });
  });
});

describe("roles", () => {
  it("lets viewers read, operators act on devices, admins manage", async () => {
    const { device } = await createDevice({ id: uniqueId("roles"), type: "light" });
    const [viewer, operator] = await Promise.all([tokenFor("viewer"), tokenFor("operator")]);
    const as = (token: string, method: string, path: string, body?: unknown) =>
      call(path, {
        method,
        headers: { ...bearer(token), "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });

    expect((await as(viewer, "GET", `/v1/devices/${device.id}/twin`)).status).toBe(200);
    expect((await as(viewer, "GET", "/v1/topology")).status).toBe(200);
    const denied = await as(viewer, "POST", `/v1/devices/${device.id}/commands`, { command: "on" });
    expect(denied.status).toBe(403);
    expect(await json(denied)).toMatchObject({ error: { code: "forbidden" } });
    expect((await as(viewer, "PATCH", `/v1/devices/${device.id}/twin/desired`, { desired: { on: true } })).status).toBe(403);

    expect((await as(operator, "POST", `/v1/devices/${device.id}/commands`, { command: "on" })).status).toBe(202);
    expect((await as(operator, "PATCH", `/v1/devices/${device.id}/twin/desired`, { desired: { on: true } })).status).toBe(200);
    expect((await as(operator, "POST", "/v1/devices", { id: uniqueId(), type: "x" })).status).toBe(403);
    expect((await as(operator, "POST", "/v1/dead-letters/replay", { all: true })).status).toBe(403);
    expect((await as(operator, "POST", `/v1/devices/${device.id}/token`)).status).toBe(403);
  });

  it("does not accept a device token where a person's credential is needed", async () => {
    const { token } = await createDevice({ id: uniqueId("dev"), type: "t" });
    expect((await call("/v1/devices", { headers: bearer(token) })).status).toBe(401);
  });
});

describe("Cloudflare Access", () => {
  async function assertion(email: string, options: { aud?: string; exp?: number } = {}) {
    const key = await importJWK(JSON.parse(env.TEST_ACCESS_PRIVATE_JWK), "RS256");
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ email })
      .setProtectedHeader({ alg: "RS256", kid: "test-access" })
      .setIssuer(env.ACCESS_TEAM_DOMAIN)
      .setAudience(options.aud ?? env.ACCESS_AUD)
      .setSubject(email)
      .setIssuedAt(now)
      .setExpirationTime(options.exp ?? now + 600)
      .sign(key);
  }

  it("admits people Access let through, with their configured role", async () => {
    const viewer = await assertion("kid@example.com");
    expect((await call("/v1/devices", { headers: { "cf-access-jwt-assertion": viewer } })).status).toBe(200);
    expect(
      (
        await call("/v1/devices", {
          method: "POST",
          headers: { "cf-access-jwt-assertion": viewer, "content-type": "application/json" },
          body: "{}",
        })
      ).status,
    ).toBe(403);
    const boss = await assertion("boss@example.com");
    const created = await call("/v1/devices", {
      method: "POST",
      headers: { "cf-access-jwt-assertion": boss, "content-type": "application/json" },
      body: JSON.stringify({ id: uniqueId("acc"), type: "t" }),
    });
    expect(created.status).toBe(201);
  });

  it("refuses an assertion for another application or an expired one", async () => {
    const ip = { "cf-connecting-ip": uniqueIp() };
    expect(
      (await call("/v1/devices", { headers: { ...ip, "cf-access-jwt-assertion": await assertion("a@example.com", { aud: "other-app" }) } }))
        .status,
    ).toBe(401);
    expect(
      (
        await call("/v1/devices", {
          headers: { ...ip, "cf-access-jwt-assertion": await assertion("a@example.com", { exp: Math.floor(Date.now() / 1000) - 5 }) },
        })
      ).status,
    ).toBe(401);
    expect((await call("/v1/devices", { headers: { ...ip, ...ADMIN } })).status).toBe(200);
  });
});
