/**
 * The MQTT gateway's first seeded fuzz tests (moved from mqtt.test.ts unchanged): random and
 * mutated packets after CONNECT beside a good session, and random bytes before CONNECT, direct
 * and through the plain /mqtt relay. The fuller fuzzers: mqtt-conformance-fuzz.test.ts,
 * mqtt-fuzz-logic.test.ts.
 */
import { generate, type Packet } from "mqtt-packet";
import { describe, expect, it } from "vitest";
import { connected, connectPacket, open, publish } from "./mqtt-harness";

describe("MQTT gateway: fuzz", () => {
  it("random and mutated packets close their own connection (or are answered) while a good session keeps publishing", async () => {
    // A seeded generator: a failure is reproducible from the seed in the test name.
    let seed = 0x5eed1234;
    const rand = () => {
      seed = (seed * 1_103_515_245 + 12_345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    const { device, token, client: good } = await connected(5);
    const valid = (i: number) =>
      [
        generate(publish(`devices/${device}/telemetry`, { payload: { temperature: i } }, 1, 10 + i), { protocolVersion: 5 }),
        generate({ cmd: "subscribe", messageId: 5, subscriptions: [{ topic: `devices/${device}/commands`, qos: 1 }] } as Packet, {
          protocolVersion: 5,
        }),
        generate({ cmd: "pubrel", messageId: 3, reasonCode: 0 } as Packet, { protocolVersion: 5 }),
        generate({ cmd: "pingreq" }, { protocolVersion: 5 }),
      ][i % 4] as unknown as Uint8Array;
    const outcomes = { closed: 0, answered: 0, waiting: 0 };
    for (let i = 0; i < 40; i++) {
      const fuzz = await open(device, 5);
      fuzz.send(connectPacket(device, token, 5, { clientId: `${device}-fuzz${i}` }));
      await fuzz.next("connack");
      let bytes: Uint8Array;
      if (i % 2 === 0) {
        bytes = new Uint8Array(1 + Math.floor(rand() * 64)).map(() => Math.floor(rand() * 256));
      } else {
        bytes = new Uint8Array(valid(i));
        for (let m = 0; m < 1 + Math.floor(rand() * 3); m++) bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
      }
      fuzz.raw(bytes);
      fuzz.send({ cmd: "pingreq" });
      const outcome = await Promise.race([
        fuzz.closed.then(() => "closed" as const),
        fuzz.next("pingresp", 400).then(
          () => "answered" as const,
          () => "waiting" as const,
        ),
      ]);
      outcomes[outcome]++;
      if (!fuzz.isClosed()) fuzz.ws.close(1000, "done");
      // The good session is untouched by whatever the fuzzed one did.
      good.send(publish(`devices/${device}/telemetry`, { payload: { humidity: i } }, 1, 1000 + i));
      const ack = (await good.next("puback")) as { messageId?: number; reasonCode?: number };
      expect(ack).toMatchObject({ messageId: 1000 + i });
      expect(ack.reasonCode ?? 0).toBe(0);
    }
    expect(good.isClosed()).toBe(false);
    expect(outcomes.closed).toBeGreaterThan(10);
  }, 60_000);

  it("random bytes before CONNECT, direct and through the plain /mqtt relay, never get a session", async () => {
    let seed = 0x0badf00d;
    const rand = () => {
      seed = (seed * 1_103_515_245 + 12_345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    const { device, client: good } = await connected(4);
    for (let i = 0; i < 20; i++) {
      const fuzz = await open(device, 4, i % 2 === 0 ? `/mqtt/${device}` : "/mqtt");
      // Never a valid CONNECT: the first byte is anything but 0x10.
      const bytes = new Uint8Array(2 + Math.floor(rand() * 48)).map(() => Math.floor(rand() * 256));
      if (bytes[0] === 0x10) bytes[0] = 0x11;
      fuzz.raw(bytes);
      fuzz.send({ cmd: "pingreq" });
      await Promise.race([fuzz.closed, new Promise((r) => setTimeout(r, 300))]);
      expect(fuzz.packets.filter((p) => p.cmd !== "connack" || (p as { returnCode?: number }).returnCode === 0)).toEqual([]);
      if (!fuzz.isClosed()) fuzz.ws.close(1000, "done");
      good.send(publish(`devices/${device}/telemetry`, { payload: { n: i } }, 1, 100 + i));
      expect(((await good.next("puback")) as { messageId?: number }).messageId).toBe(100 + i);
    }
  }, 60_000);
});
