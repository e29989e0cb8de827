/**
 * The dashboard's own API in workerd: GET /api/dashboard and the layout, the local fault switch
 * off by default, PATCH /v1/rooms/:id, login-token revocation, and GET /v1/devices/:id's exact
 * last_seen. Bad input gets 4xx with the field at fault, never a 5xx.
 */
import { describe, expect, it } from "vitest";
import { IssuedTokensAnswer, RevokedTokenAnswer } from "../../shared/schemas/api/auth";
import { ADMIN, call, createDevice, eventually, json, post, tokenFor, uniqueId } from "./helpers";

const send = (method: string, path: string, token: string | null, body?: unknown) =>
  call(path, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), "content-type": "application/json" },
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
  });
const admin = ADMIN.authorization.slice("Bearer ".length);

describe("GET /api/dashboard", () => {
  it("answers the caller's layout, device status, rooms and alerts; saves a layout per person", async () => {
    const room = uniqueId("dash-room");
    const { device } = await createDevice({ id: uniqueId("dash"), type: "temperature", room });
    const viewer = await tokenFor("viewer", `viewer-${uniqueId("p")}`);
    const first = await json<Record<string, unknown>>(await send("GET", "/api/dashboard", viewer));
    expect(first).toMatchObject({
      user: { role: "viewer" },
      config: { saved: false, layout: { sections: ["alerts", "attention", "rooms"] } },
    });
    const items = (first.devices as { items: { id: string; availability: string; rejecting: boolean }[] }).items;
    expect(items.find((d) => d.id === device.id)).toMatchObject({ availability: "offline", rejecting: false });
    expect((first.rooms as { id: string }[]).some((r) => r.id === room)).toBe(true);

    const saved = await send("PUT", "/api/dashboard/layout", viewer, { sections: ["rooms"], pinned: [device.id] });
    expect(saved.status).toBe(200);
    const again = await json<{ config: unknown }>(await send("GET", "/api/dashboard", viewer));
    expect(again.config).toMatchObject({ saved: true, layout: { sections: ["rooms"], pinned: [device.id] } });
    // Another person's layout is their own.
    const other = await json<{ config: { saved: boolean } }>(await send("GET", "/api/dashboard", await tokenFor("viewer")));
    expect(other.config.saved).toBe(false);
  });

  it("refuses bad layouts with the field at fault, callers without a token, and the fault switch unless LOCAL_FAULTS=on", async () => {
    const viewer = await tokenFor("viewer");
    for (const [body, field] of [
      [{ sections: ["kitchen"], pinned: [] }, "sections"],
      [{ sections: [], pinned: ["BAD ID"] }, "pinned"],
      [{ sections: [], pinned: [], extra: 1 }, ""],
    ] as const) {
      const res = await send("PUT", "/api/dashboard/layout", viewer, body);
      expect(res.status).toBe(400);
      expect(JSON.stringify(await res.json())).toContain(field);
    }
    expect((await send("PUT", "/api/dashboard/layout", viewer, "{not json")).status).toBe(400);
    expect((await send("GET", "/api/dashboard", null)).status).toBe(401);
    expect((await send("PUT", "/api/dashboard/faults", admin, { store: "down" })).status).toBe(404);
    expect((await send("PUT", "/api/dashboard/faults", viewer, { store: "down" })).status).toBe(403);
  });
});

describe("PATCH /v1/rooms/:id", () => {
  it("renames a room (admins only), and 404s an unknown one", async () => {
    const room = uniqueId("rename");
    await createDevice({ id: uniqueId("rn"), type: "temperature", room });
    const res = await send("PATCH", `/v1/rooms/${room}`, admin, { name: "Back garden" });
    expect(res.status).toBe(200);
    expect((await json<{ room: { name: string } }>(await send("GET", `/v1/rooms/${room}`, admin))).room.name).toBe("Back garden");
    expect((await send("PATCH", `/v1/rooms/${room}`, admin, { name: "" })).status).toBe(400);
    expect((await send("PATCH", `/v1/rooms/${room}`, await tokenFor("operator"), { name: "x" })).status).toBe(403);
    expect((await send("PATCH", `/v1/rooms/${uniqueId("none")}`, admin, { name: "x" })).status).toBe(404);
  });
});

describe("login tokens", () => {
  it("lists issued tokens, revokes one, and then refuses its refresh", async () => {
    const sub = `revoke-${uniqueId("p")}`;
    const issued = await json<{ refresh_token: string; id: string }>(
      await send("POST", "/v1/auth/token", admin, { grant_type: "issue", sub, role: "viewer" }),
    );
    const list = IssuedTokensAnswer.parse(await json(await send("GET", "/v1/auth/tokens", admin)));
    expect(list.tokens.find((t) => t.id === issued.id)).toMatchObject({ sub, revoked_at: null });
    const refresh = () => send("POST", "/v1/auth/token", null, { grant_type: "refresh_token", refresh_token: issued.refresh_token });
    expect((await refresh()).status).toBe(200);
    const revoked = await send("DELETE", `/v1/auth/tokens/${issued.id}`, admin);
    expect(revoked.status).toBe(200);
    expect(RevokedTokenAnswer.parse(await json(revoked)).token.revoked_at).toBeTruthy();
    expect((await refresh()).status).toBe(401);
    expect((await send("DELETE", "/v1/auth/tokens/not-an-id", admin)).status).toBe(404);
    expect((await send("DELETE", `/v1/auth/tokens/${crypto.randomUUID()}`, admin)).status).toBe(404);
    expect((await send("GET", "/v1/auth/tokens", await tokenFor("operator"))).status).toBe(403);
  });
});

describe("last_seen", () => {
  it("GET /v1/devices/:id answers the twin's exact time; the list's copy is written on the first message", async () => {
    const { device, token } = await createDevice({ id: uniqueId("seen"), type: "temperature" });
    expect((await post("/v1/telemetry", token, { payload: { temperature: 20 } })).status).toBe(202);
    const one = await json<{ device: { last_seen: string; availability: string } }>(await send("GET", `/v1/devices/${device.id}`, admin));
    expect(one.device.availability).toBe("online");
    expect(Date.now() - Date.parse(one.device.last_seen)).toBeLessThan(5000);
    // The registry's copy is written beside the answer (waitUntil): it lands a moment later.
    await eventually(
      async () => {
        const listed = await json<{ devices: { id: string; last_seen: string | null }[] }>(
          await send("GET", "/v1/devices?limit=1000", admin),
        );
        return listed.devices.find((d) => d.id === device.id)?.last_seen ?? undefined;
      },
      5000,
      "the registry's last_seen",
    );
  });
});
