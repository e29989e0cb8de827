/**
 * The MQTT fuzzer against the real session inside workerd, for a fixed budget (about 20 s; the
 * long runs are test/node/mqtt-fuzz.test.ts's, on demand). Seeded (test/mqtt/fuzz.ts): the seed
 * is in the test name. For every fuzzed connection it asserts:
 * - the gateway's byte stream is never corrupted: every packet it sent parses cleanly, whole,
 *   with no truncated acknowledgement (checkStream);
 * - no internal error: no console.error line, and no v5 DISCONNECT 0x80 (what one would send);
 * - a bystander connection of the same device keeps publishing and being acknowledged.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { corpus, frames, fuzzed, prng } from "../mqtt/fuzz";
import { checkStream, connected, connectPacket, open, publish } from "./mqtt-harness";

const BUDGET_MS = 20_000;
const SEED = 0x1f0a2b;

describe("MQTT fuzz inside workerd", () => {
  let errors: unknown[][] = [];
  beforeEach(() => {
    errors = [];
    vi.spyOn(console, "error").mockImplementation((...args: unknown[]) => {
      errors.push(args);
    });
  });
  afterEach(() => vi.restoreAllMocks());

  for (const version of [4, 5] as const) {
    it(`v${version}, seed ${SEED + version}: fuzzed packets never corrupt the stream, log an internal error, or touch a bystander`, async () => {
      const rand = prng(SEED + version);
      const { device, token, client: bystander } = await connected(version);
      const packets = corpus(device, version);
      const started = Date.now();
      const outcomes = { closed: 0, answered: 0, waiting: 0 };
      let round = 0;
      while (Date.now() - started < BUDGET_MS / 2) {
        round++;
        const fuzz = await open(device, version);
        fuzz.send(connectPacket(device, token, version, { clientId: `${device}-f${round}` }));
        await fuzz.next("connack");
        for (let i = 0; i < 1 + Math.floor(rand() * 4); i++) {
          for (const part of frames(rand, fuzzed(rand, packets))) fuzz.raw(part);
        }
        fuzz.send({ cmd: "pingreq" });
        const outcome = await Promise.race([
          fuzz.closed.then(() => "closed" as const),
          fuzz.next("pingresp", 300).then(
            () => "answered" as const,
            () => "waiting" as const,
          ),
        ]);
        outcomes[outcome]++;
        if (!fuzz.isClosed()) fuzz.ws.close(1000, "done");
        await fuzz.settled();
        let stream: string[] = [];
        try {
          stream = checkStream(fuzz.bytes, version);
        } catch (error) {
          throw new Error(`round ${round}: ${String(error)}; bytes ${JSON.stringify(fuzz.bytes.slice(0, 64))}`);
        }
        expect(fuzz.streamErrors).toEqual([]);
        const disconnects = fuzz.packets.filter((p) => p.cmd === "disconnect") as { reasonCode?: number }[];
        expect(disconnects.filter((d) => d.reasonCode === 0x80)).toEqual([]);
        expect(stream[0]).toBe("connack");
        // The bystander is untouched.
        bystander.send(publish(`devices/${device}/telemetry`, { payload: { n: round } }, 1, 1 + (round % 60_000)));
        expect(((await bystander.next("puback")) as { reasonCode?: number }).reasonCode ?? 0).toBe(0);
      }
      expect(bystander.isClosed()).toBe(false);
      expect(errors).toEqual([]);
      expect(outcomes.closed).toBeGreaterThan(0);
      expect(outcomes.answered).toBeGreaterThan(0);
      console.log(JSON.stringify({ fuzz: `mqtt workerd v${version}`, seed: SEED + version, rounds: round, ...outcomes }));
    }, 120_000);
  }
});
