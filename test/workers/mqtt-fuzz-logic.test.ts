/**
 * The MQTT fuzzer against the gateway's packet logic (framer, validate.ts, mqtt-packet as the
 * session chains them; test/mqtt/logic.ts) inside workerd: a short run in CI. The long run is
 * test/mqtt/fuzz-run.ts (docs/benchmarks.md, "MQTT fuzz").
 */
import { describe, expect, it } from "vitest";
import { connectBytes, runLogicFuzz } from "../mqtt/logic";

const INPUTS = 20_000;
const SEED = 0x5eed;

describe("MQTT fuzz: the gateway's packet logic", () => {
  for (const version of [4, 5] as const) {
    it(`v${version}, seed ${SEED + version}: only MqttErrors with DISCONNECT reasons; what passes validation parses whole`, () => {
      const result = runLogicFuzz(version, INPUTS, SEED + version, connectBytes(version));
      // Both ways out are exercised: well-formed packets accepted, malformed ones closing.
      expect(result.packets).toBeGreaterThan(INPUTS / 2);
      expect(result.accepted).toBeGreaterThan(INPUTS / 10);
      expect(result.closed).toBeGreaterThan(INPUTS / 10);
    }, 120_000);
  }
});
