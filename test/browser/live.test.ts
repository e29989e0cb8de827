/**
 * The dashboard's live client (web/src/live.ts) against a scripted hub: fake sockets and a fake
 * clock, so reconnects, backoff, acks and close codes are checked exactly and fast. The real
 * hub is exercised by dashboard.test.ts in a real browser.
 */
import { describe, expect, it } from "vitest";
import {
  backoffDelay,
  type Clock,
  type ConnectionState,
  combinedState,
  HubSocket,
  type HubSocketOptions,
  LiveConnection,
  type Snapshot,
  type SocketLike,
  type Update,
} from "../../web/src/live.ts";

class FakeSocket implements SocketLike {
  readyState = 0;
  sent: Record<string, unknown>[] = [];
  closedWith: number | undefined;
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  readonly url: string;
  readonly protocols: string[];
  constructor(url: string, protocols: string[]) {
    this.url = url;
    this.protocols = protocols;
  }
  send(data: string): void {
    this.sent.push(JSON.parse(data));
  }
  close(code = 1000): void {
    this.closedWith = code;
    this.readyState = 3;
  }
  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }
  receive(message: unknown): void {
    this.onmessage?.({ data: JSON.stringify(message) });
  }
  /** The server (or the network) closes it. */
  drop(code: number): void {
    this.readyState = 3;
    this.onclose?.({ code, reason: "" });
  }
  ofType(type: string) {
    return this.sent.filter((m) => m.type === type);
  }
}

class FakeClock implements Clock {
  time = 1_000_000;
  #timers = new Map<number, { at: number; fn: () => void }>();
  #next = 1;
  now = () => this.time;
  setTimeout = (fn: () => void, ms: number) => {
    const id = this.#next++;
    this.#timers.set(id, { at: this.time + ms, fn });
    return id;
  };
  clearTimeout = (handle: unknown) => {
    this.#timers.delete(handle as number);
  };
  /** Runs every timer due within `ms`, in time order. */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      const due = [...this.#timers.entries()].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.#timers.delete(due[0]);
      this.time = due[1].at;
      due[1].fn();
    }
    this.time = end;
  }
  get pending(): number {
    return this.#timers.size;
  }
}

const flush = () => new Promise((r) => setTimeout(r, 0));

function harness(overrides: Partial<HubSocketOptions> = {}) {
  const sockets: FakeSocket[] = [];
  const clock = new FakeClock();
  const snapshots: Snapshot[] = [];
  const updates: { update: Update; replayed: boolean }[] = [];
  const states: ConnectionState[] = [];
  const calls = { refresh: 0, unauthorized: [] as string[], checks: 0 };
  let token = "token-1";
  const hub = new HubSocket({
    url: "ws://edge.test/v1/live",
    hub: "kitchen",
    accessToken: async () => token,
    refreshToken: async () => {
      calls.refresh++;
      token = `token-${calls.refresh + 1}`;
      return token;
    },
    unauthorized: (reason) => calls.unauthorized.push(reason),
    checkAuth: async () => {
      calls.checks++;
    },
    events: {
      snapshot: (_hub, s) => snapshots.push(s),
      update: (_hub, update, replayed) => updates.push({ update, replayed }),
      state: (_hub, s) => states.push(s),
    },
    createSocket: (url, protocols) => {
      const socket = new FakeSocket(url, protocols);
      sockets.push(socket);
      return socket;
    },
    clock,
    random: () => 0.5,
    ...overrides,
  });
  const last = () => {
    const socket = sockets.at(-1);
    if (!socket) throw new Error("no socket yet");
    return socket;
  };
  return { hub, sockets, clock, snapshots, updates, states, calls, last };
}

const twin = (seq: number, device = "d1", value = seq): Update => ({
  type: "update",
  seq,
  stream: "twin",
  device,
  at: new Date(1_700_000_000_000 + seq * 1000).toISOString(),
  data: { readings: { temperature: { value, at: new Date(1_700_000_000_000 + seq * 1000).toISOString() } } },
});

describe("live client: one hub socket", () => {
  it("connects with the edgemesh.v1 and bearer subprotocols, subscribes, and is live on the snapshot", async () => {
    const t = harness({ selection: { streams: ["twin", "availability"] } });
    t.hub.start();
    await flush();
    expect(t.last().url).toBe("ws://edge.test/v1/live?hub=kitchen");
    expect(t.last().protocols).toEqual(["edgemesh.v1", "bearer.token-1"]);
    expect(t.hub.state).toBe("connecting");
    t.last().open();
    expect(t.last().sent[0]).toEqual({ type: "subscribe", streams: ["twin", "availability"] });
    expect(t.last().ofType("resume")).toHaveLength(0);
    t.last().receive({ type: "snapshot", seq: 7, devices: { d1: { readings: {}, availability: { status: "online" } } } });
    expect(t.hub.state).toBe("live");
    expect(t.snapshots).toHaveLength(1);
    expect(t.hub.seq).toBe(7);
  });

  it("acknowledges every 100 updates, or after five seconds when fewer came", async () => {
    const t = harness();
    t.hub.start();
    await flush();
    t.last().open();
    t.last().receive({ type: "snapshot", seq: 0, devices: {} });
    t.last().sent.length = 0;
    for (let seq = 1; seq <= 100; seq++) t.last().receive(twin(seq));
    expect(t.last().ofType("ack")).toEqual([{ type: "ack", seq: 100 }]);
    for (let seq = 101; seq <= 130; seq++) t.last().receive(twin(seq));
    expect(t.last().ofType("ack")).toHaveLength(1);
    t.clock.advance(4999);
    expect(t.last().ofType("ack")).toHaveLength(1);
    t.clock.advance(1);
    expect(t.last().ofType("ack").at(-1)).toEqual({ type: "ack", seq: 130 });
    expect(t.updates).toHaveLength(130);
  });

  it("drops duplicates and delivers coalesced batches, acknowledging them", async () => {
    const t = harness();
    t.hub.start();
    await flush();
    t.last().open();
    t.last().receive({ type: "snapshot", seq: 0, devices: {} });
    t.last().receive(twin(1));
    t.last().receive(twin(1));
    t.last().receive({ type: "coalesced", seq: 300, updates: [twin(298, "a"), twin(299, "b")] });
    expect(t.updates.map((u) => u.update.seq)).toEqual([1, 298, 299]);
    expect(t.hub.seq).toBe(300);
    expect(t.last().ofType("ack").at(-1)).toEqual({ type: "ack", seq: 300 });
  });

  it("reconnects with jittered backoff after the connection drops, re-subscribes, then resumes from the last seq", async () => {
    const t = harness();
    t.hub.start();
    await flush();
    t.last().open();
    t.last().receive({ type: "snapshot", seq: 10, devices: {} });
    t.last().receive(twin(11));
    t.last().receive(twin(12));
    t.last().drop(1006);
    expect(t.hub.state).toBe("reconnecting");
    expect(t.sockets).toHaveLength(1);
    // attempt 0: random 0.5 × 500 ms
    t.clock.advance(249);
    await flush();
    expect(t.sockets).toHaveLength(1);
    t.clock.advance(1);
    await flush();
    expect(t.sockets).toHaveLength(2);
    t.last().open();
    expect(t.last().sent.map((m) => m.type)).toEqual(["subscribe", "resume"]);
    expect(t.last().ofType("resume")[0]).toEqual({ type: "resume", after: 12 });
    // The hub answers the subscribe with a snapshot (seq 15), then replays 13..15 and says resumed.
    t.last().receive({ type: "snapshot", seq: 15, devices: {} });
    t.last().receive(twin(13));
    t.last().receive({
      type: "update",
      seq: 14,
      stream: "command",
      device: "d1",
      at: "x",
      data: { id: "c1", command: "reboot", status: "succeeded" },
    });
    t.last().receive(twin(15));
    t.last().receive({ type: "resumed", seq: 15 });
    t.last().receive(twin(16));
    expect(t.hub.state).toBe("live");
    // Twin updates the snapshot already covers are not applied again; the command event is.
    expect(t.updates.map((u) => [u.update.seq, u.replayed])).toEqual([
      [11, false],
      [12, false],
      [14, true],
      [16, false],
    ]);
  });

  it("backs off exponentially, reads offline after repeated failures, and reconnectNow skips the wait", async () => {
    const t = harness({ random: () => 1 });
    t.hub.start();
    await flush();
    t.last().open();
    t.last().receive({ type: "snapshot", seq: 1, devices: {} });
    t.last().drop(1011);
    const delays: number[] = [];
    for (let i = 0; i < 4; i++) {
      const before = t.clock.time;
      const count = t.sockets.length;
      while (t.sockets.length === count) {
        t.clock.advance(50);
        await flush();
      }
      delays.push(t.clock.time - before);
      t.last().drop(1006); // the edge is still down: never opens
    }
    expect(delays).toEqual([500, 1000, 2000, 4000]);
    expect(t.hub.state).toBe("offline");
    // Before each retry after an attempt that never opened, the credential is checked over HTTP.
    expect(t.calls.checks).toBe(3);
    t.hub.reconnectNow();
    await flush();
    expect(t.sockets).toHaveLength(6);
    t.last().open();
    t.last().receive({ type: "snapshot", seq: 5, devices: {} });
    expect(t.hub.state).toBe("live");
  });

  it("4001: refreshes the token and reconnects at once with the new one, resuming", async () => {
    const t = harness();
    t.hub.start();
    await flush();
    t.last().open();
    t.last().receive({ type: "snapshot", seq: 3, devices: {} });
    t.last().drop(4001);
    await flush();
    await flush();
    expect(t.calls.refresh).toBe(1);
    expect(t.sockets).toHaveLength(2);
    expect(t.last().protocols).toEqual(["edgemesh.v1", "bearer.token-2"]);
    t.last().open();
    expect(t.last().ofType("resume")).toEqual([{ type: "resume", after: 3 }]);
  });

  it("4001 with a refresh the edge refuses: the login screen, no more reconnects", async () => {
    const t = harness({
      refreshToken: async () => {
        throw Object.assign(new Error("refused"), { authRequired: true });
      },
    });
    t.hub.start();
    await flush();
    t.last().open();
    t.last().drop(4001);
    await flush();
    await flush();
    expect(t.calls.unauthorized).toHaveLength(1);
    expect(t.hub.state).toBe("offline");
    t.clock.advance(60_000);
    await flush();
    expect(t.sockets).toHaveLength(1);
  });

  it("a credential check that says the session is over stops reconnecting", async () => {
    const t = harness({
      checkAuth: async () => {
        throw Object.assign(new Error("401"), { authRequired: true });
      },
    });
    t.hub.start();
    await flush();
    t.last().drop(1006); // the upgrade was refused: never opened
    t.clock.advance(500);
    await flush();
    await flush();
    expect(t.sockets).toHaveLength(1);
    expect(t.calls.unauthorized).toEqual(["the edge no longer accepts this session"]);
    expect(t.hub.state).toBe("offline");
  });

  it("4003: stops and asks for the login screen", async () => {
    const t = harness();
    t.hub.start();
    await flush();
    t.last().open();
    t.last().drop(4003);
    expect(t.calls.unauthorized).toEqual(["the hub refused this token"]);
    expect(t.hub.state).toBe("offline");
    t.clock.advance(60_000);
    await flush();
    expect(t.sockets).toHaveLength(1);
  });

  it("4008: reconnects and takes a fresh snapshot instead of resuming", async () => {
    const t = harness();
    t.hub.start();
    await flush();
    t.last().open();
    t.last().receive({ type: "snapshot", seq: 40, devices: {} });
    t.last().drop(4008);
    t.clock.advance(500);
    await flush();
    expect(t.sockets).toHaveLength(2);
    t.last().open();
    expect(t.last().sent.map((m) => m.type)).toEqual(["subscribe"]);
  });

  it("pings, and closes a socket that stopped answering, then reconnects", async () => {
    const t = harness({ pingIntervalMs: 1000 });
    t.hub.start();
    await flush();
    t.last().open();
    t.last().receive({ type: "snapshot", seq: 1, devices: {} });
    t.clock.advance(1000);
    expect(t.last().ofType("ping")).toHaveLength(1);
    t.last().receive({ type: "pong" });
    t.clock.advance(1000);
    t.clock.advance(1000);
    t.clock.advance(1000);
    expect(t.sockets[0]?.closedWith).toBe(4000);
    t.clock.advance(1000);
    await flush();
    expect(t.sockets.length).toBe(2);
  });

  it("stop() closes the socket and cancels every timer", async () => {
    const t = harness();
    t.hub.start();
    await flush();
    t.last().open();
    t.last().receive({ type: "snapshot", seq: 1, devices: {} });
    t.last().receive(twin(2));
    t.hub.stop();
    expect(t.last().closedWith).toBe(1000);
    expect(t.clock.pending).toBe(0);
    expect(t.hub.state).toBe("offline");
  });
});

describe("live client: helpers and several hubs", () => {
  it("backoffDelay stays within [initial/10, min(max, initial·2^attempt)]", () => {
    for (let attempt = 0; attempt < 12; attempt++) {
      expect(backoffDelay(attempt, () => 0, 500, 8000)).toBe(50);
      expect(backoffDelay(attempt, () => 1, 500, 8000)).toBe(Math.min(8000, 500 * 2 ** attempt));
    }
  });

  it("the combined state is the worst of the hubs", () => {
    expect(combinedState(["live", "live"])).toBe("live");
    expect(combinedState(["live", "connecting"])).toBe("connecting");
    expect(combinedState(["live", "reconnecting", "connecting"])).toBe("reconnecting");
    expect(combinedState(["offline", "live"])).toBe("offline");
    expect(combinedState([])).toBe("offline");
  });

  it("LiveConnection opens one socket per hub and closes hubs no longer wanted", async () => {
    const sockets: FakeSocket[] = [];
    const states: ConnectionState[] = [];
    const live = new LiveConnection({
      url: "ws://edge.test/v1/live",
      accessToken: async () => "t",
      refreshToken: async () => "t",
      unauthorized: () => {},
      createSocket: (url, protocols) => {
        const s = new FakeSocket(url, protocols);
        sockets.push(s);
        return s;
      },
      clock: new FakeClock(),
      events: { snapshot: () => {}, update: () => {}, state: (s) => states.push(s) },
    });
    live.setHubs(["kitchen", "unassigned", "system"]);
    await flush();
    expect(sockets.map((s) => new URL(s.url).searchParams.get("hub"))).toEqual(["kitchen", "unassigned", "system"]);
    expect(live.state).toBe("connecting");
    for (const s of sockets) {
      s.open();
      s.receive({ type: "snapshot", seq: 0, devices: {} });
    }
    expect(live.state).toBe("live");
    live.setHubs(["kitchen", "system", "office"]);
    await flush();
    expect(sockets[1]?.closedWith).toBe(1000);
    expect(live.hubs).toEqual(["kitchen", "system", "office"]);
    expect(live.state).toBe("connecting");
    live.stop();
    expect(live.state).toBe("offline");
    expect(states).toContain("live");
  });
});
