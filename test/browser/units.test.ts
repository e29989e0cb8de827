/** The dashboard's logic that needs no page: session and tokens, the store, the filters, formatting. */
import { describe, expect, it } from "vitest";
import { displayNumber, displayReading, unitOrNull } from "../../shared/display.ts";
import { DISPLAY_DECIMALS, normalize } from "../../shared/units.ts";
import { formatUpdate } from "../../tools/cli/commands/tail.ts";
import { createApi } from "../../web/src/api.ts";
import { filtersFrom, matches } from "../../web/src/filters.ts";
import { ago, formatValue, roomLabel } from "../../web/src/format.ts";
import { looksLikeJwt, REFRESH_KEY, roleAllows, Session } from "../../web/src/session.ts";
import { deviceSnippets, shellQuote } from "../../web/src/snippets.ts";
import { Store, type StoreEvent } from "../../web/src/store.ts";
import type { Device } from "../../web/src/types.ts";
import { firings } from "../../web/src/views/alert-rules.ts";
import { chartCsv } from "../../web/src/views/charts.ts";

class MemoryStorage {
  map = new Map<string, string>();
  getItem = (k: string) => this.map.get(k) ?? null;
  setItem = (k: string, v: string) => void this.map.set(k, v);
  removeItem = (k: string) => void this.map.delete(k);
}

const JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";

function tokenServer(options: { refuseRefresh?: boolean } = {}) {
  const calls: Record<string, string>[] = [];
  const fetchImpl = (async (_url: string, init: RequestInit) => {
    const body = JSON.parse(String(init.body)) as Record<string, string>;
    calls.push(body);
    if (body.grant_type === "admin_token" && body.admin_token !== "the-admin-token")
      return Response.json({ error: { code: "unauthorized", message: "no" } }, { status: 401 });
    if (body.grant_type === "refresh_token" && options.refuseRefresh)
      return Response.json({ error: { code: "unauthorized", message: "expired" } }, { status: 401 });
    const role = body.grant_type === "admin_token" ? "admin" : "viewer";
    return Response.json({
      access_token: `access-${calls.length}`,
      token_type: "Bearer",
      expires_in: 900,
      role,
      sub: role === "admin" ? "admin" : "alice",
      ...(body.grant_type === "admin_token" ? { refresh_token: "refresh-from-admin" } : {}),
    });
  }) as unknown as typeof fetch;
  return { calls, fetchImpl };
}

describe("session", () => {
  it("tells a login token (JWT) from the admin token", () => {
    expect(looksLikeJwt(JWT)).toBe(true);
    expect(looksLikeJwt("k3JQ9x_random-admin-token")).toBe(false);
    expect(looksLikeJwt("device-1.secret")).toBe(false);
  });

  it("exchanges the admin token, keeps the refresh token in storage and the access token in memory", async () => {
    const storage = new MemoryStorage();
    const server = tokenServer();
    const session = new Session({ fetch: server.fetchImpl, storage });
    const identity = await session.login("  the-admin-token ");
    expect(identity).toEqual({ sub: "admin", role: "admin" });
    expect(server.calls[0]).toEqual({ grant_type: "admin_token", admin_token: "the-admin-token" });
    expect(storage.getItem(REFRESH_KEY)).toBe("refresh-from-admin");
    expect([...storage.map.values()].some((v) => v.startsWith("access-"))).toBe(false);
    expect(await session.accessToken()).toBe("access-1");
    session.logout();
  });

  it("exchanges a login token with the refresh grant and keeps it", async () => {
    const storage = new MemoryStorage();
    const server = tokenServer();
    const session = new Session({ fetch: server.fetchImpl, storage });
    expect(await session.login(JWT)).toEqual({ sub: "alice", role: "viewer" });
    expect(server.calls[0]).toEqual({ grant_type: "refresh_token", refresh_token: JWT });
    expect(storage.getItem(REFRESH_KEY)).toBe(JWT);
    session.logout();
  });

  it("a wrong token is a LoginError, not a sign-out", async () => {
    const session = new Session({ fetch: tokenServer().fetchImpl, storage: new MemoryStorage() });
    await expect(session.login("wrong")).rejects.toMatchObject({ name: "LoginError", status: 401 });
  });

  it("refreshes once for many callers, and refreshes early when the token is about to expire", async () => {
    let now = 0;
    const storage = new MemoryStorage();
    const server = tokenServer();
    const session = new Session({ fetch: server.fetchImpl, storage, now: () => now });
    await session.login("the-admin-token");
    const [a, b] = await Promise.all([session.refresh(), session.refresh()]);
    expect(a).toBe(b);
    expect(server.calls).toHaveLength(2);
    now = 900_000 - 20_000; // 20 s before expiry
    expect(await session.accessToken()).toBe("access-3");
    session.logout();
  });

  it("a refused refresh signs out and tells the listeners", async () => {
    const storage = new MemoryStorage();
    storage.setItem(REFRESH_KEY, JWT);
    const session = new Session({ fetch: tokenServer({ refuseRefresh: true }).fetchImpl, storage });
    const seen: (string | undefined)[] = [];
    session.onChange((identity, reason) => seen.push(identity ? "in" : reason));
    await expect(session.accessToken()).rejects.toMatchObject({ authRequired: true });
    expect(storage.getItem(REFRESH_KEY)).toBeNull();
    expect(seen).toHaveLength(1);
  });

  it("roles rank viewer < operator < admin", () => {
    expect(roleAllows("admin", "operator")).toBe(true);
    expect(roleAllows("operator", "operator")).toBe(true);
    expect(roleAllows("viewer", "operator")).toBe(false);
    expect(roleAllows(undefined, "viewer")).toBe(false);
  });
});

describe("api", () => {
  it("retries once with a fresh token after a 401, and reports 503 as unavailable", async () => {
    const storage = new MemoryStorage();
    storage.setItem(REFRESH_KEY, JWT);
    const server = tokenServer();
    const seen: string[] = [];
    const apiFetch = (async (url: string, init: RequestInit) => {
      if (url.endsWith("/v1/auth/token")) return server.fetchImpl(url, init);
      const auth = new Headers(init.headers).get("authorization") ?? "";
      seen.push(`${url} ${auth}`);
      if (url.endsWith("/down")) return Response.json({ error: { code: "unavailable", message: "D1 is down" } }, { status: 503 });
      if (auth === "Bearer access-1") return Response.json({ error: { code: "unauthorized", message: "expired" } }, { status: 401 });
      return Response.json({ ok: true });
    }) as unknown as typeof fetch;
    const session = new Session({ fetch: apiFetch, storage });
    const api = createApi(session, apiFetch);
    expect(await api.get("/v1/rooms")).toEqual({ ok: true });
    expect(seen).toEqual(["/v1/rooms Bearer access-1", "/v1/rooms Bearer access-2"]);
    await expect(api.get("/down")).rejects.toMatchObject({ status: 503, code: "unavailable", unavailable: true });
    session.logout();
  });
});

const device = (id: string, room: string | null, extra: Partial<Device> = {}): Device => ({
  id,
  kind: "device",
  name: null,
  type: "temperature",
  class: "mains",
  room,
  metadata: {},
  availability: "online",
  last_seen: null,
  ...extra,
});

describe("store", () => {
  it("applies snapshots and updates, never letting an older reading replace a newer one", () => {
    const store = new Store();
    const events: StoreEvent[] = [];
    store.on((e) => events.push(e));
    store.setDevices([device("a", "kitchen"), device("b", null)]);
    store.applySnapshot("kitchen", {
      type: "snapshot",
      seq: 3,
      devices: { a: { readings: { temperature: { value: 21, unit: "°C", at: "2026-01-01T10:00:00Z" } }, availability: null } },
    });
    expect(store.devices.get("a")?.readings.temperature?.value).toBe(21);
    store.applyUpdate({
      seq: 4,
      stream: "twin",
      device: "a",
      at: "",
      data: { readings: { temperature: { value: 19, at: "2026-01-01T09:00:00Z" } } },
    });
    expect(store.devices.get("a")?.readings.temperature?.value).toBe(21);
    store.applyUpdate({
      seq: 5,
      stream: "twin",
      device: "a",
      at: "",
      data: { readings: { temperature: { value: 22, at: "2026-01-01T10:01:00Z" } } },
    });
    expect(store.devices.get("a")?.readings.temperature?.value).toBe(22);
    store.applyUpdate({
      seq: 6,
      stream: "availability",
      device: "b",
      at: "2026-01-01T10:02:00Z",
      data: { status: "offline", reason: "timeout" },
    });
    expect(store.devices.get("b")?.availability.status).toBe("offline");
    expect(events.map((e) => e.kind)).toEqual(["devices", "reading", "resync", "reading", "availability"]);
    expect(store.metrics()).toEqual(["temperature"]);
  });

  it("keeps readings of a device it does not know yet until the registry list has it", () => {
    const store = new Store();
    store.applyUpdate({
      seq: 1,
      stream: "twin",
      device: "new",
      at: "",
      data: { readings: { power: { value: 3, at: "2026-01-01T00:00:00Z" } } },
    });
    store.setDevices([device("new", "utility")]);
    expect(store.devices.get("new")?.readings.power?.value).toBe(3);
  });
});

describe("filters and formatting", () => {
  it("filters by text, room (including unassigned) and metric", () => {
    const a = {
      device: device("kitchen-thermo", "kitchen", { name: "Kitchen thermometer" }),
      readings: { temperature: { value: 1, at: "" } },
      availability: { status: "online" as const },
    };
    const b = {
      device: device("meter1", null, { type: "energy" }),
      readings: { power: { value: 1, at: "" } },
      availability: { status: "online" as const },
    };
    const f = (search: string) => filtersFrom(new URLSearchParams(search));
    expect([a, b].filter((s) => matches(s, f("q=thermo"))).map((s) => s.device.id)).toEqual(["kitchen-thermo"]);
    expect([a, b].filter((s) => matches(s, f("q=ENERGY"))).map((s) => s.device.id)).toEqual(["meter1"]);
    expect([a, b].filter((s) => matches(s, f("room=unassigned"))).map((s) => s.device.id)).toEqual(["meter1"]);
    expect([a, b].filter((s) => matches(s, f("metric=temperature"))).map((s) => s.device.id)).toEqual(["kitchen-thermo"]);
    expect([a, b].filter((s) => matches(s, f(""))).length).toBe(2);
  });

  it("formats values, times and room names", () => {
    expect(formatValue(21.456, "°C")).toMatch(/^21[.,]5 °C$/);
    expect(formatValue(true)).toBe("yes");
    expect(formatValue(undefined)).toBe("—");
    expect(ago(new Date(Date.now() - 30_000).toISOString())).toBe("30 s ago");
    expect(ago(null)).toBe("never");
    expect(roomLabel("living_room")).toBe("Living room");
    expect(roomLabel(null)).toBe("No room");
  });

  it("rounds converted readings to their unit's precision for display only, the same in the dashboard, the CLI and tail", () => {
    const stored = normalize(65, "°F");
    expect(stored.value).toBeCloseTo(18.3333333333, 9); // full precision kept
    expect(DISPLAY_DECIMALS["°C"]).toBe(1);
    expect(displayNumber(stored.value, stored.unit)).toBe("18.3");
    expect(formatValue(stored.value, stored.unit)).toBe("18.3 °C");
    expect(formatValue(normalize(1500, "Wh").value, "kWh")).toBe("1.50 kWh");
    expect(formatValue(40.6, "%")).toBe("41 %");
    expect(formatValue(22, "°C")).toBe("22.0 °C");
    expect(formatValue(1.234567, null)).toBe("1.235");
    expect(formatValue(1.2, "")).toBe("1.2");
    expect(displayReading(stored.value, stored.unit, "")).toBe("18.3°C");
    const line = formatUpdate(
      {
        type: "update",
        seq: 1,
        stream: "twin",
        device: "t1",
        routing_key: "sensors.temperature.kitchen",
        at: "2026-12-05T03:00:00.000Z",
        data: { readings: { temperature: { value: stored.value, unit: "°C" }, power_kw: { value: 1.234567 } } },
      },
      "room:kitchen",
    );
    expect(line).toContain("temperature=18.3°C power_kw=1.235");
    expect(line).not.toContain("18.33");
  });

  it("has one representation of no unit: null", () => {
    expect(unitOrNull("")).toBeNull();
    expect(unitOrNull(undefined)).toBeNull();
    expect(unitOrNull(null)).toBeNull();
    expect(unitOrNull("°C")).toBe("°C");
  });

  it("builds a new device's snippets with its token and endpoint, quoted for the shell", () => {
    const snippets = deviceSnippets("https://edge.example.org", { id: "attic-thermo", type: "temperature" }, "attic-thermo.s3cr'et");
    expect(snippets.map((s) => s.id)).toEqual(["curl", "mqttjs", "paho", "mosquitto", "agent"]);
    const text = (id: string) => snippets.find((s) => s.id === id)?.text ?? "";
    expect(text("curl")).toContain("'https://edge.example.org/v1/telemetry'");
    expect(text("curl")).toContain(`-H 'Authorization: Bearer attic-thermo.s3cr'"'"'et'`);
    expect(text("mqttjs")).toContain('"wss://edge.example.org/mqtt/attic-thermo"');
    expect(text("paho")).toContain('ws_set_options(path="/mqtt/attic-thermo")');
    expect(text("paho")).toContain("client.tls_set()");
    expect(text("paho")).toContain('client.connect("edge.example.org", 443)');
    expect(deviceSnippets("http://127.0.0.1:8787", { id: "d", type: "x" }, "d.t").find((s) => s.id === "mqttjs")?.text).toContain(
      '"ws://127.0.0.1:8787/mqtt/d"',
    );
    expect(shellQuote("it's")).toBe(`'it'"'"'s'`);
  });

  it("counts how often a threshold would have started firing, and writes a chart's CSV", () => {
    expect(firings([20, 31, 32, 29, 35, 10], "gt", 30)).toBe(2);
    expect(firings([30, 30], "gte", 30)).toBe(1);
    expect(firings([], "lt", 0)).toBe(0);
    const csv = chartCsv("d1", "power_kw", null, [
      { t: Date.UTC(2026, 0, 1, 10), v: 1.5 },
      { t: Date.UTC(2026, 0, 1, 11), v: 2 },
    ]);
    expect(csv).toBe(
      "time,device,metric,value,unit\r\n2026-01-01T10:00:00.000Z,d1,power_kw,1.5,\r\n2026-01-01T11:00:00.000Z,d1,power_kw,2,\r\n",
    );
    expect(chartCsv("d,1", "m", '°"C', [{ t: 0, v: 1 }])).toContain('"d,1",m,1,"°""C"');
  });
});
