/**
 * The MQTT fuzzer against the gateway's packet logic in this process (test/mqtt/logic.ts): a
 * short run in CI, as long as asked on demand:
 *
 *   MQTT_FUZZ_PACKETS=1000000 MQTT_FUZZ_SEED=1 npx vitest run --project node test/node/mqtt-fuzz.test.ts
 *
 * It prints packets/s (docs/benchmarks.md, "MQTT fuzz"); it asserts only the invariants, never a
 * speed. The same packets go to the real session inside workerd in
 * test/workers/mqtt-conformance-fuzz.test.ts.
 */
import { generate, type Packet } from "mqtt-packet";
import { describe, expect, it } from "vitest";
import { corpus, frames, fuzzed, prng } from "../mqtt/fuzz";
import { LogicConnection, type Tally } from "../mqtt/logic";

const PACKETS = Number(process.env.MQTT_FUZZ_PACKETS ?? 100_000);
const SEED = Number(process.env.MQTT_FUZZ_SEED ?? 0x5eed);

function connectBytes(version: 4 | 5): Uint8Array {
  const connect = {
    cmd: "connect",
    protocolId: "MQTT",
    protocolVersion: version,
    clean: true,
    clientId: "fuzz-dev",
    keepalive: 30,
    username: "fuzz-dev",
    password: "fuzz-dev.0123456789abcdef",
  } as unknown as Packet;
  return new Uint8Array(generate(connect, { protocolVersion: version }) as unknown as Uint8Array);
}

describe("MQTT fuzz: the gateway's packet logic", () => {
  for (const version of [4, 5] as const) {
    it(`v${version}: ${PACKETS} fuzzed inputs, seed ${SEED}: only MqttErrors, only valid reasons, nothing half-validated`, () => {
      const rand = prng(SEED + version);
      const packets = corpus("fuzz-dev", version);
      const connect = connectBytes(version);
      const tally: Tally = { packets: 0, accepted: 0, closed: 0, byReason: {} };
      let conn = new LogicConnection(version, connect);
      const started = performance.now();
      for (let i = 0; i < PACKETS; i++) {
        const input = fuzzed(rand, packets);
        for (const part of frames(rand, input)) {
          if (!conn.feed(part, tally)) break;
        }
        // A closed connection, or one left waiting for the rest of a truncated packet: the next input gets a new one.
        if (!conn.open || conn.waiting) conn = new LogicConnection(version, connect);
      }
      const seconds = (performance.now() - started) / 1000;
      console.log(
        JSON.stringify({
          fuzz: `mqtt v${version}`,
          seed: SEED + version,
          inputs: PACKETS,
          packets: tally.packets,
          accepted: tally.accepted,
          closed: tally.closed,
          inputs_per_s: Math.round(PACKETS / seconds),
          packets_per_s: Math.round(tally.packets / seconds),
          by_reason: tally.byReason,
        }),
      );
      // Both ways out are exercised: well-formed packets accepted, malformed ones closing.
      expect(tally.packets).toBeGreaterThan(PACKETS / 2);
      expect(tally.accepted).toBeGreaterThan(PACKETS / 10);
      expect(tally.closed).toBeGreaterThan(PACKETS / 10);
    }, 3_600_000);
  }
});
