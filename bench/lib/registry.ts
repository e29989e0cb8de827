/**
 * A private wrangler dev registry for the next local edge this process starts: through the
 * machine-wide registry (~/.wrangler/registry), a benchmark's queue producers would deliver into
 * another local edge's consumers (a test's, `scripts/dev.sh`'s) and the other way round.
 * scripts/lib/local-edge.ts passes process.env to wrangler, so setting it before each start
 * gives each edge its own. The folders go when the process exits.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const made: string[] = [];
process.once("exit", () => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

export function privateRegistry(): string {
  const dir = mkdtempSync(join(tmpdir(), "bench-registry-"));
  made.push(dir);
  process.env.WRANGLER_REGISTRY_PATH = dir;
  return dir;
}
