/** LiveHub over real WebSockets: auth and origin, filters, snapshot and ordered deltas, resume, slow clients, expiry. */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { hubStub } from "../../durable-objects/stubs";
import { ADMIN, call, createDevice, post, tokenFor, uniqueId } from "./helpers";

interface Frame {
  type: string;
  seq?: number;
  device?: string;
  stream?: string;
  data?: Record<string, unknown>;
  devices?: Record<string, { readings: Record<string, { value: unknown }> }>;
  updates?: Frame[];
}

interface Client {
  ws: WebSocket;
  frames: Frame[];
  closed: Promise<{ code: number; reason: string }>;
  send(message: unknown): void;
  next(predicate: (f: Frame) => boolean, timeoutMs?: number): Promise<Frame>;
}

async function connect(
  hub: string,
  token: string,
  headers: Record<string, string> = {},
  autoAck = false,
): Promise<{ status: number; client?: Client; protocol?: string | null }> {
  const res = await call(`/v1/live?hub=${hub}`, {
    headers: { upgrade: "websocket", "sec-websocket-protocol": `edgemesh.v1, bearer.${token}`, ...headers },
  });
  if (res.status !== 101 || !res.webSocket) return { status: res.status };
  const ws = res.webSocket;
  ws.accept();
  const frames: Frame[] = [];
  const waiters: { predicate: (f: Frame) => boolean; resolve: (f: Frame) => void; from: number }[] = [];
  ws.addEventListener("message", (event) => {
    const frame = JSON.parse(String(event.data)) as Frame;
    frames.push(frame);
    // A well-behaved dashboard acks as it goes (docs/live.md).
    if (autoAck && frame.type === "update" && (frame.seq ?? 0) % 50 === 0) ws.send(JSON.stringify({ type: "ack", seq: frame.seq }));
    for (const w of [...waiters]) {
      if (w.predicate(frame)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(frame);
      }
    }
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.addEventListener("close", (e) => resolve({ code: e.code, reason: e.reason })),
  );
  const client: Client = {
    ws,
    frames,
    closed,
    send: (message) => ws.send(JSON.stringify(message)),
    next: (predicate, timeoutMs = 5000) => {
      const found = frames.find(predicate);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no matching frame within ${timeoutMs} ms; got ${JSON.stringify(frames.slice(-5))}`)),
          timeoutMs,
        );
        waiters.push({
          predicate,
          from: frames.length,
          resolve: (f) => {
            clearTimeout(timer);
            resolve(f);
          },
        });
      });
    },
  };
  return { status: 101, client, protocol: res.headers.get("sec-websocket-protocol") };
}

async function open(hub: string, token: string, autoAck = false): Promise<Client> {
  const { status, client } = await connect(hub, token, {}, autoAck);
  expect(status).toBe(101);
  return client as Client;
}

const room = () => uniqueId("lr").replaceAll("-", "_");

describe("GET /v1/live", () => {
  it("upgrades a viewer's socket and answers the edgemesh.v1 subprotocol", async () => {
    const result = await connect(room(), await tokenFor("viewer"));
    expect(result.status).toBe(101);
    expect(result.protocol).toBe("edgemesh.v1");
    result.client?.ws.close(1000);
  });

  it("refuses without a token (401), with a bad origin (403), and a non-upgrade request (426)", async () => {
    const noToken = await call(`/v1/live?hub=${room()}`, { headers: { upgrade: "websocket" } });
    expect(noToken.status).toBe(401);
    const token = await tokenFor("viewer");
    expect((await connect(room(), token, { origin: "https://evil.example" })).status).toBe(403);
    expect((await connect(room(), token, { origin: "https://dashboard.example" })).status).toBe(101);
    expect((await connect(room(), token, { origin: "https://edge.test" })).status).toBe(101);
    expect((await call(`/v1/live?hub=${room()}`, { headers: ADMIN })).status).toBe(426);
    expect((await connect("Bad Hub!", token)).status).toBe(400);
  });
});

describe("subscriptions", () => {
  it("sends a snapshot on subscribe, then ordered deltas with sequence numbers", async () => {
    const r = room();
    const a = await createDevice({ id: uniqueId("a"), type: "temperature", room: r });
    await post("/v1/telemetry", a.token, { payload: { temperature: 20 } });
    await new Promise((res) => setTimeout(res, 200));
    const client = await open(r, await tokenFor("viewer"));
    client.send({ type: "subscribe" });
    const snapshot = await client.next((f) => f.type === "snapshot");
    expect(snapshot.devices?.[a.device.id]?.readings.temperature?.value).toBe(20);

    await post("/v1/telemetry", a.token, { payload: { temperature: 21 } });
    await post("/v1/telemetry", a.token, { payload: { temperature: 22 } });
    const u2 = await client.next(
      (f) => f.type === "update" && (f.data?.readings as Record<string, { value: number }> | undefined)?.temperature?.value === 22,
    );
    const twinUpdates = client.frames.filter((f) => f.type === "update" && f.stream === "twin");
    const seqs = twinUpdates.map((f) => f.seq as number);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    expect(u2.seq).toBeGreaterThan(snapshot.seq as number);
    client.ws.close(1000);
  });

  it("filters by device and by routing-key pattern, and unsubscribes", async () => {
    const r = room();
    const a = await createDevice({ id: uniqueId("a"), type: "temperature", room: r });
    const b = await createDevice({ id: uniqueId("b"), type: "humidity", room: r });
    const onlyA = await open(r, await tokenFor("viewer"));
    onlyA.send({ type: "subscribe", devices: [a.device.id], streams: ["twin"] });
    const byPattern = await open(r, await tokenFor("viewer"));
    byPattern.send({ type: "subscribe", patterns: ["sensors.humidity.#"], streams: ["twin"] });
    await onlyA.next((f) => f.type === "snapshot");
    await byPattern.next((f) => f.type === "snapshot");

    await post("/v1/telemetry", b.token, { payload: { humidity: 55 } });
    await post("/v1/telemetry", a.token, { payload: { temperature: 19 } });
    await onlyA.next((f) => f.type === "update" && f.device === a.device.id);
    await byPattern.next((f) => f.type === "update" && f.device === b.device.id);
    expect(onlyA.frames.some((f) => f.device === b.device.id)).toBe(false);
    expect(byPattern.frames.some((f) => f.type === "update" && f.device === a.device.id)).toBe(false);

    onlyA.send({ type: "unsubscribe", devices: [a.device.id] });
    onlyA.send({ type: "subscribe", devices: [b.device.id] });
    await post("/v1/telemetry", b.token, { payload: { humidity: 56 } });
    await onlyA.next((f) => f.type === "update" && f.device === b.device.id);
    onlyA.ws.close(1000);
    byPattern.ws.close(1000);
  });

  it("streams availability and command status", async () => {
    const r = room();
    const d = await createDevice({ id: uniqueId("lamp"), type: "light", room: r });
    const client = await open(r, await tokenFor("viewer"));
    client.send({ type: "subscribe", streams: ["availability", "command"] });
    await client.next((f) => f.type === "snapshot");
    await post("/v1/telemetry", d.token, { payload: { on: true } });
    await client.next((f) => f.stream === "availability" && f.data?.status === "online");
    const sent = await call(`/v1/devices/${d.device.id}/commands`, {
      method: "POST",
      headers: { ...ADMIN, "content-type": "application/json" },
      body: JSON.stringify({ command: "off" }),
    });
    expect(sent.status).toBe(202);
    await client.next((f) => f.stream === "command" && f.data?.status === "queued");
    await call("/v1/device/commands", { headers: { authorization: `Bearer ${d.token}` } });
    await client.next((f) => f.stream === "command" && f.data?.status === "delivered");
    expect(client.frames.some((f) => f.stream === "twin")).toBe(false);
    client.ws.close(1000);
  });

  it("streams dead letters on the system hub", async () => {
    const client = await open("system", await tokenFor("viewer"));
    client.send({ type: "subscribe", streams: ["dead_letter"] });
    await client.next((f) => f.type === "snapshot");
    const { token } = await createDevice({ id: uniqueId("svc"), kind: "service", type: "t", publish: ["metrics:#"] });
    const id = uniqueId("lost");
    await post("/v1/exchanges/metrics/publish", token, { id, routing_key: "metrics.nothing.here", payload: { x: 1 } });
    const frame = await client.next((f) => f.stream === "dead_letter" && f.data?.message_id === id, 10_000);
    expect(frame.data).toMatchObject({ queue: "(unroutable)" });
    client.ws.close(1000);
  });

  it("answers bad client messages with an error and keeps the socket", async () => {
    const client = await open(room(), await tokenFor("viewer"));
    client.ws.send("not json");
    await client.next((f) => f.type === "error" && (f as unknown as { code: string }).code === "invalid_json");
    client.send({ type: "subscribe", devices: ["Not An Id"] });
    await client.next((f) => f.type === "error" && (f as unknown as { code: string }).code === "invalid_payload");
    client.send({ type: "ping" });
    await client.next((f) => f.type === "pong");
    client.ws.close(1000);
  });
});

describe("resume", () => {
  it("replays what a reconnecting client missed while the hub still has it, else sends a snapshot", async () => {
    const r = room();
    const d = await createDevice({ id: uniqueId("r"), type: "temperature", room: r });
    const token = await tokenFor("viewer");
    const first = await open(r, token);
    first.send({ type: "subscribe" });
    const snapshot = await first.next((f) => f.type === "snapshot");
    first.ws.close(1000);
    await first.closed;

    // Further apart than the twin's hub throttle (HUB_GAP_MS), so two updates, not one merged.
    await post("/v1/telemetry", d.token, { payload: { temperature: 1 } });
    await new Promise((res) => setTimeout(res, 150));
    await post("/v1/telemetry", d.token, { payload: { temperature: 2 } });
    await new Promise((res) => setTimeout(res, 300));

    const second = await open(r, token);
    second.send({ type: "subscribe" });
    await second.next((f) => f.type === "snapshot");
    second.send({ type: "resume", after: snapshot.seq });
    const resumed = await second.next((f) => f.type === "resumed");
    const replayed = second.frames.filter((f) => f.type === "update" && f.stream === "twin");
    expect(replayed.map((f) => (f.data?.readings as Record<string, { value: number }> | undefined)?.temperature?.value)).toEqual([1, 2]);
    expect(resumed.seq).toBeGreaterThanOrEqual(replayed.at(-1)?.seq ?? 0);

    // Too far back: the ring no longer has it, so a fresh snapshot instead. The hub restarts
    // before it persisted anything (lazily, every few seconds): its ring is empty, its sequence goes on after the numbers it reserved.
    second.ws.close(1000);
    await runInDurableObject(env.LIVE_HUB.getByName(`room:${r}`), async (_i, state) => {
      state.abort("test: restart");
    }).catch(() => undefined);
    const third = await open(r, token);
    third.send({ type: "subscribe" });
    await third.next((f) => f.type === "snapshot");
    const before = third.frames.length;
    third.send({ type: "resume", after: 0 });
    await third.next((f, i = third.frames.indexOf(f)) => f.type === "snapshot" && i >= before);
    // A client resuming from a number the old instance handed out (never persisted) gets a snapshot too, not a gap.
    const mid = third.frames.length;
    third.send({ type: "resume", after: resumed.seq });
    await third.next((f, i = third.frames.indexOf(f)) => f.type === "snapshot" && i >= mid);
    third.ws.close(1000);
  });
});

describe("slow clients", () => {
  it("coalesces for a client that stops acking, without holding up another, and closes it with 4008 if it stays behind", {
    timeout: 20_000,
  }, async () => {
    const r = room();
    const hub = hubStub(env, `room:${r}`);
    const slow = await open(r, await tokenFor("viewer"));
    const fast = await open(r, await tokenFor("viewer"), true);
    slow.send({ type: "subscribe" });
    fast.send({ type: "subscribe" });
    await slow.next((f) => f.type === "snapshot");
    await fast.next((f) => f.type === "snapshot");

    const at = new Date().toISOString();
    const updates = Array.from({ length: 300 }, (_, i) => ({
      stream: "twin" as const,
      device: `dev-${i % 3}`,
      at,
      data: { readings: { n: { value: i, at } } },
    }));
    // Updates arrive over time, as from devices; acks interleave between publishes.
    for (let i = 0; i < updates.length; i += 50) {
      await hub.publish(updates.slice(i, i + 50));
      await new Promise((res) => setTimeout(res, 30));
    }
    // The fast one acks as it goes and gets all 300; the slow one stops at the window (256).
    const last = await fast.next(
      (f) => f.type === "update" && (f.data?.readings as Record<string, { value: number }> | undefined)?.n?.value === 299,
    );
    fast.send({ type: "ack", seq: last.seq });
    await new Promise((res) => setTimeout(res, 200));
    expect(slow.frames.filter((f) => f.type === "update")).toHaveLength(256);
    expect(await hub.stats()).toMatchObject({ behind: 1 });

    // When it acks, it gets the latest per device and stream, once.
    slow.send({ type: "ack", seq: slow.frames.filter((f) => f.type === "update").at(-1)?.seq });
    const coalesced = await slow.next((f) => f.type === "coalesced");
    expect(coalesced.updates?.map((u) => u.device).sort()).toEqual(["dev-0", "dev-1", "dev-2"]);
    expect(coalesced.updates?.map((u) => (u.data?.readings as Record<string, { value: number }> | undefined)?.n?.value).sort()).toEqual([
      297, 298, 299,
    ]);

    // Behind again, and silent past LIVE_STALL_SECONDS: closed with 4008.
    await hub.publish(updates);
    await runInDurableObject(env.LIVE_HUB.getByName(`room:${r}`), async (_i, state) => {
      for (const ws of state.getWebSockets()) {
        const a = ws.deserializeAttachment() as { behindSince: number };
        if (a.behindSince > 0) ws.serializeAttachment({ ...a, behindSince: Date.now() - 60_000 });
      }
    });
    await runDurableObjectAlarm(env.LIVE_HUB.getByName(`room:${r}`));
    expect((await slow.closed).code).toBe(4008);
    fast.ws.close(1000);
  });
});

describe("token expiry", () => {
  it("closes the socket with 4001 when the token expires", async () => {
    const r = room();
    const client = await open(r, await tokenFor("viewer"));
    client.send({ type: "subscribe" });
    await client.next((f) => f.type === "snapshot");
    await runInDurableObject(env.LIVE_HUB.getByName(`room:${r}`), async (_i, state) => {
      for (const ws of state.getWebSockets())
        ws.serializeAttachment({ ...(ws.deserializeAttachment() as object), exp: Math.floor(Date.now() / 1000) - 1 });
    });
    await runDurableObjectAlarm(env.LIVE_HUB.getByName(`room:${r}`));
    expect(await client.closed).toMatchObject({ code: 4001 });
  });
});
