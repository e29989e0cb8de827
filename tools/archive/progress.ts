/**
 * The progress bar (cli-progress), on stderr so that stdout stays the data or the summary. Drawn
 * only on a terminal and never with --json: a log or a pipe gets the summary alone.
 */
import cliProgress from "cli-progress";

export interface Progress {
  start(total: number): void;
  increment(by?: number): void;
  stop(): void;
}

const silent: Progress = { start() {}, increment() {}, stop() {} };

export function progressBar(label: string, unit: string, enabled: boolean): Progress {
  if (!enabled || !process.stderr.isTTY) return silent;
  const bar = new cliProgress.SingleBar(
    {
      format: `${label} [{bar}] {percentage}% | {value}/{total} ${unit} | {duration_formatted} elapsed, ETA {eta_formatted}`,
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: false,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  );
  return {
    start: (total) => bar.start(total, 0),
    increment: (by = 1) => bar.increment(by),
    stop: () => bar.stop(),
  };
}
