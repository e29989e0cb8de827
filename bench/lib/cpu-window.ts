/**
 * The CPU columns every bench prints beside its figures (docs/benchmarks.md): over one
 * measurement, the CPU time of the measured edge's process tree(s), of this load generator, and
 * of everything else on the machine ("other CPU"), each in cores (1.00 = one core busy for the
 * whole measurement). Other CPU above about 0.25 means something else competed for the cores
 * and the row is low by an unknown amount.
 */
import { machineBusySeconds, treeCpuSeconds } from "./proc.ts";
import { fixed } from "./stats.ts";

export interface CpuFigures {
  /** The measured process trees (edges, brokers, agents), in cores. */
  edgeCores: number;
  /** This process (the load generator), in cores. */
  genCores: number;
  /** Everything else on the machine, in cores; NaN where /proc is unreadable. */
  otherCores: number;
  wallS: number;
}

/**
 * Starts a window over the measured trees rooted at `roots` (pids; undefined ones are skipped);
 * `ours` are the bench's other processes (an idle reference edge), in neither column.
 */
export function cpuWindow(roots: readonly (number | undefined)[], ours: readonly (number | undefined)[] = []): { stop(): CpuFigures } {
  const valid = (list: readonly (number | undefined)[]) => list.filter((p): p is number => typeof p === "number" && p > 0);
  const sum = (list: number[]) => list.reduce((total, pid) => total + (treeCpuSeconds(pid) ?? 0), 0);
  const pids = valid(roots);
  const others = valid(ours);
  const treeNow = () => sum(pids);
  const treesBefore = treeNow();
  const othersBefore = sum(others);
  const busyBefore = machineBusySeconds();
  const cpuBefore = process.cpuUsage();
  const wallBefore = performance.now();
  return {
    stop(): CpuFigures {
      const wallS = Math.max(1e-3, (performance.now() - wallBefore) / 1000);
      const cpu = process.cpuUsage(cpuBefore);
      const genCores = (cpu.user + cpu.system) / 1e6 / wallS;
      const edgeCores = Math.max(0, treeNow() - treesBefore) / wallS;
      const oursCores = Math.max(0, sum(others) - othersBefore) / wallS;
      const busyAfter = machineBusySeconds();
      const otherCores =
        busyBefore === undefined || busyAfter === undefined
          ? Number.NaN
          : Math.max(0, (busyAfter - busyBefore) / wallS - edgeCores - genCores - oursCores);
      return { edgeCores, genCores, otherCores, wallS };
    },
  };
}

/** The three columns' headers and cells, for a bench's table. */
export const CPU_COLUMNS = ["edge CPU", "gen CPU", "other CPU"] as const;
export function cpuCells(cpu: CpuFigures | undefined): string[] {
  return cpu ? [fixed(cpu.edgeCores, 2), fixed(cpu.genCores, 2), fixed(cpu.otherCores, 2)] : ["-", "-", "-"];
}

/** A goal line every bench prints: the figure, its reference, the ratio, and whether the goal holds. */
export function goalLine(what: string, holds: boolean, detail: string): string {
  return `goal ${holds ? "HOLDS" : "MISSED"}: ${what} — ${detail}`;
}
