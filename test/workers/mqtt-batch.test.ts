/**
 * The session's publishes into the twin, batched (durable-objects/mqtt/batch.ts, docs/mqtt.md
 * "Batching into the twin"): back-to-back QoS 1 publishes take fewer twin calls than messages,
 * every PUBACK comes in the order of its PUBLISH, after its batch's durable write, and a message
 * the twin refuses gets its own reason code while the rest of its batch succeeds.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { generate, type Packet } from "mqtt-packet";
import { describe, expect, it } from "vitest";
import { ADMIN, call, json } from "./helpers";
import { connected, publish } from "./mqtt-harness";

const N = 50;

/** Packets as one WebSocket frame's bytes (a client that coalesces its writes). */
function frame(packets: Packet[], version: 4 | 5): Uint8Array {
  const parts = packets.map((p) => generate(p, { protocolVersion: version } as never) as unknown as Uint8Array);
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    bytes.set(p, at);
    at += p.length;
  }
  return bytes;
}

describe("MQTT publishes batched into the twin", () => {
  for (const version of [5, 4] as const) {
    it(`v${version}: ${N} QoS 1 publishes back to back get ${N} PUBACKs in order, with fewer twin calls, a bad one its own code`, async () => {
      const { device, client } = await connected(version);
      const base = Date.now() - 10_000;
      // Index 20: the twin refuses it (a timestamp an hour ahead); index 30: no JSON at all (refused before the twin).
      // All in one WebSocket frame, so they are surely back to back: separate frames race a local
      // twin that answers within a millisecond, and how many arrive during a call is then luck.
      const packets = Array.from({ length: N }, (_, i) => {
        const id = i + 1;
        if (i === 30) return publish(`devices/${device}/telemetry`, "{not json", 1, id);
        const timestamp = new Date(i === 20 ? Date.now() + 3_600_000 : base + i).toISOString();
        return publish(`devices/${device}/telemetry`, { id: `${device}-b-${i}`, timestamp, payload: { n: i } }, 1, id);
      });
      client.raw(frame(packets, version));
      const acks: (Packet & { messageId: number; reasonCode?: number })[] = [];
      while (acks.length < N) acks.push((await client.next("puback", 10_000)) as Packet & { messageId: number; reasonCode?: number });
      // [MQTT-4.6.0-2] PUBACKs in the order the PUBLISHes arrived.
      expect(acks.map((a) => a.messageId)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
      const codes = acks.map((a) => a.reasonCode ?? 0);
      if (version === 5) {
        expect(codes[20]).toBe(0x99);
        expect(codes[30]).toBe(0x99);
        expect(codes.filter((c) => c !== 0)).toHaveLength(2);
      } else expect(codes.every((c) => c === 0)).toBe(true);

      // Fewer twin calls than messages (each call is one outbox row of the twin).
      const calls = await env.MQTT_SESSION.getByName(device).twinCalls();
      expect(calls).toBeGreaterThan(0);
      expect(calls).toBeLessThan(N - 1);
      const rows = await runInDurableObject(
        env.DEVICE_TWIN.getByName(device),
        async (_i, state) =>
          state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM outbox_ring WHERE json_array_length(ids) > 0").one().n,
      );
      expect(rows).toBeLessThan(N - 1);
      console.warn(`MEASURE mqtt v${version}: ${N} publishes back to back → ${calls} twin calls, ${rows} twin outbox rows`);
      // Everything but the two bad ones was accepted, once; the refusal is in the twin's error log.
      const twin = await json<{ counters: { accepted: number; rejected: number } }>(
        await call(`/v1/devices/${device}/twin`, { headers: ADMIN }),
      );
      expect(twin.counters.accepted).toBe(N - 2);
      expect(twin.counters.rejected).toBe(1);
      const errors = await json<{ errors: { code: string; message_id: string | null }[] }>(
        await call(`/v1/devices/${device}/errors`, { headers: ADMIN }),
      );
      expect(errors.errors.map((e) => e.code)).toContain("timestamp_in_future");
      client.ws.close();
    });
  }

  it("50 QoS 1 publishes in one WebSocket frame (a client that coalesces its writes) take two twin calls", async () => {
    const { device, client } = await connected(5);
    client.raw(
      frame(
        Array.from({ length: N }, (_, i) =>
          publish(`devices/${device}/telemetry`, { id: `${device}-f-${i}`, payload: { n: i } }, 1, i + 1),
        ),
        5,
      ),
    );
    const acks: (Packet & { messageId: number; reasonCode?: number })[] = [];
    while (acks.length < N) acks.push((await client.next("puback", 10_000)) as Packet & { messageId: number; reasonCode?: number });
    expect(acks.map((a) => a.messageId)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
    expect(acks.every((a) => (a.reasonCode ?? 0) === 0)).toBe(true);
    // The first publish goes at once; the other 49 arrive while it is in flight and go together.
    const calls = await env.MQTT_SESSION.getByName(device).twinCalls();
    console.warn(`MEASURE mqtt one frame: ${N} publishes → ${calls} twin calls`);
    expect(calls).toBeLessThanOrEqual(3);
    client.ws.close();
  });

  it("an idle device's publish is not held back: one publish, one twin call, its PUBACK at once", async () => {
    const { device, client } = await connected(5);
    client.send(publish(`devices/${device}/telemetry`, { payload: { n: 1 } }, 1, 1));
    expect(((await client.next("puback")) as { reasonCode?: number }).reasonCode ?? 0).toBe(0);
    client.send(publish(`devices/${device}/telemetry`, { payload: { n: 2 } }, 1, 2));
    expect(((await client.next("puback")) as { reasonCode?: number }).reasonCode ?? 0).toBe(0);
    expect(await env.MQTT_SESSION.getByName(device).twinCalls()).toBe(2);
    client.ws.close();
  });
});
