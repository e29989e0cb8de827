/**
 * The long MQTT fuzz run: the gateway's packet logic (test/mqtt/logic.ts) in one Node process,
 * as many fuzzed inputs as asked, both versions. Bundled first, because the gateway's modules use
 * the Worker's extensionless imports:
 *
 *   npx esbuild test/mqtt/fuzz-run.ts --bundle --platform=node --format=cjs --log-level=warning \
 *     --outfile=node_modules/.cache/mqtt-fuzz.cjs && node node_modules/.cache/mqtt-fuzz.cjs 500000 1
 *
 * (inputs per version, seed). Prints one JSON line per version with packets/s
 * (docs/benchmarks.md, "MQTT fuzz"); exits 1 on a broken invariant, naming the seed and input.
 * The CI runs are test/workers/mqtt-fuzz-logic.test.ts and mqtt-conformance-fuzz.test.ts.
 */
import { connectBytes, runLogicFuzz } from "./logic";

const argv = (globalThis as unknown as { process: { argv: string[]; exitCode?: number } }).process;
const inputs = Number(argv.argv[2] ?? 500_000);
const seed = Number(argv.argv[3] ?? 1);
for (const version of [4, 5] as const) {
  try {
    console.log(JSON.stringify(runLogicFuzz(version, inputs, seed + version, connectBytes(version))));
  } catch (error) {
    console.error(String(error));
    argv.exitCode = 1;
  }
}
