/**
 * Keeps a test run readable: the logs tests provoke on purpose — the Worker's structured log
 * lines (`{"level":"error",…}`: rejected messages, dead letters, retries, failed upstreams) and
 * wrangler's warning that the test config's secrets are not in .dev.vars (the tests bind their
 * own) — go to test-results/test-output.log instead of between the results. EDGEMESH_TEST_LOGS=1
 * prints them as before. Installed by vitest.config.ts in vitest's main process, which is where
 * workerd's output arrives (the workers pool writes it straight out, see vitest.config.ts).
 */
import { appendFileSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

// biome-ignore lint/suspicious/noControlCharactersInRegex: stripping ANSI colours is the point
const ANSI = /\u001b\[[0-9;]*m/g;
const NOISE = [/^\s*\{"level":"(error|warn|info|debug)"/, /Missing required secrets: /, /^\s*Using secrets defined in process\.env\s*$/];

export const OUTPUT_LOG = join(import.meta.dirname, "../../test-results/test-output.log");

export function isNoise(text: string): boolean {
  const plain = text.replace(ANSI, "");
  return NOISE.some((pattern) => pattern.test(plain));
}

let installed = false;

/** Diverts noise written to this process's stdout and stderr into OUTPUT_LOG. */
export function captureNoise(): void {
  if (installed || process.env.EDGEMESH_TEST_LOGS === "1") return;
  installed = true;
  mkdirSync(dirname(OUTPUT_LOG), { recursive: true });
  writeFileSync(OUTPUT_LOG, "");
  for (const stream of [process.stdout, process.stderr]) {
    const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
    stream.write = ((chunk: unknown, ...rest: unknown[]) => {
      const text = typeof chunk === "string" ? chunk : Buffer.isBuffer(chunk) ? chunk.toString() : undefined;
      if (text === undefined || !text.split("\n").some((line) => line.trim() !== "" && isNoise(line))) return write(chunk, ...rest);
      // A chunk may mix noise and results: only the noisy lines are diverted.
      const keep: string[] = [];
      for (const line of text.split(/(?<=\n)/)) {
        if (line.trim() !== "" && isNoise(line)) appendFileSync(OUTPUT_LOG, line.endsWith("\n") ? line : `${line}\n`);
        else keep.push(line);
      }
      const callback = rest.find((r) => typeof r === "function") as (() => void) | undefined;
      if (keep.join("").trim() === "") {
        callback?.();
        return true;
      }
      return write(keep.join(""), ...rest);
    }) as typeof stream.write;
  }
}

/** vitest's onConsoleLog: structured log lines go to the output log; the rest prints. */
export function onConsoleLog(log: string): false | undefined {
  if (process.env.EDGEMESH_TEST_LOGS === "1") return /^\{"level":"(info|debug)"/.test(log) ? false : undefined;
  if (!isNoise(log)) return undefined;
  appendFileSync(OUTPUT_LOG, log.endsWith("\n") ? log : `${log}\n`);
  return false;
}
