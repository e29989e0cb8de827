/**
 * Memory and CPU of a process and its descendants, read from Linux /proc. The local edge is a
 * process tree (node running wrangler, which starts workerd), so figures are summed over the
 * tree. Where /proc cannot be read (not Linux), the functions return undefined and callers fall
 * back to the load generator's own figures, saying so.
 */
import { readdirSync, readFileSync } from "node:fs";

/** Linux reports CPU times in clock ticks of USER_HZ, which is 100 on every mainstream architecture. */
const TICKS_PER_SECOND = 100;

interface ProcStat {
  pid: number;
  ppid: number;
  /** User + system CPU time in seconds. */
  cpuSeconds: number;
}

function readStat(pid: number): ProcStat | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name is in parentheses and may itself contain spaces or parentheses.
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    const ppid = Number(fields[1]);
    const ticks = Number(fields[11]) + Number(fields[12]);
    if (!Number.isFinite(ppid) || !Number.isFinite(ticks)) return undefined;
    return { pid, ppid, cpuSeconds: ticks / TICKS_PER_SECOND };
  } catch {
    return undefined;
  }
}

/** A process's command line as one string (arguments joined by spaces), "" if unreadable. */
export function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ").trim();
  } catch {
    return "";
  }
}

/** Whether this machine has a readable /proc with per-process status. */
export function procAvailable(): boolean {
  return readStat(process.pid) !== undefined && rssBytes(process.pid) !== undefined;
}

/** `root` and every live descendant of it. */
export function processTree(root: number): number[] {
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return [];
  }
  const children = new Map<number, number[]>();
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readStat(Number(name));
    if (!stat) continue;
    const list = children.get(stat.ppid);
    if (list) list.push(stat.pid);
    else children.set(stat.ppid, [stat.pid]);
  }
  const tree: number[] = [];
  const pending = [root];
  while (pending.length > 0) {
    const pid = pending.pop() as number;
    if (tree.includes(pid)) continue;
    tree.push(pid);
    pending.push(...(children.get(pid) ?? []));
  }
  return tree;
}

/** Resident set size of one process in bytes (VmRSS), undefined if it cannot be read. */
export function rssBytes(pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

export interface TreeUsage {
  pids: number[];
  /** Sum of the processes' RSS: pages shared between them (libraries) count once per process. */
  rssBytes: number;
  cpuSeconds: number;
}

/** RSS and CPU time of `root` and its descendants, undefined if /proc cannot be read. */
export function treeUsage(root: number): TreeUsage | undefined {
  const pids = processTree(root);
  let rss = 0;
  let cpu = 0;
  let readable = 0;
  for (const pid of pids) {
    const bytes = rssBytes(pid);
    const stat = readStat(pid);
    if (bytes === undefined || stat === undefined) continue;
    rss += bytes;
    cpu += stat.cpuSeconds;
    readable++;
  }
  return readable > 0 ? { pids, rssBytes: rss, cpuSeconds: cpu } : undefined;
}

/**
 * Samples a process tree's RSS on an interval while a measurement runs, keeping the peak; the
 * CPU time used between start() and stop() comes from the tree's counters at both ends.
 * (CPU of a descendant that exits in between is not counted.)
 */
export interface ProcessCpu {
  pid: number;
  commandLine: string;
  cpuSeconds: number;
  /** Share of one core over the sampled time. */
  cpuCores: number;
}

export interface TreeSample {
  peakRssBytes: number;
  lastRssBytes: number;
  cpuSeconds: number;
  /** CPU use as a share of one core (1.0 = one core busy all the time). */
  cpuCores: number;
  /** The same per process of the tree, busiest first (processes alive at the end). */
  perProcess: ProcessCpu[];
  /**
   * Whether processes of the tree started or ended while sampling — for a `wrangler dev` tree,
   * a reload (a watched file changed) that restarted workerd. CPU of an ended process is lost.
   */
  changed: boolean;
}

export class TreeSampler {
  readonly root: number;
  #timer: NodeJS.Timeout | undefined;
  #peakRss = 0;
  #lastRss = 0;
  #cpuAtStart = 0;
  #perPidAtStart = new Map<number, number>();
  #startedAt = 0;
  #available = false;

  constructor(root: number) {
    this.root = root;
  }

  start(intervalMs = 250): void {
    const first = treeUsage(this.root);
    this.#available = first !== undefined;
    if (!first) return;
    this.#cpuAtStart = first.cpuSeconds;
    this.#perPidAtStart = new Map(first.pids.map((pid) => [pid, readStat(pid)?.cpuSeconds ?? 0]));
    this.#peakRss = this.#lastRss = first.rssBytes;
    this.#startedAt = performance.now();
    this.#timer = setInterval(() => this.#sample(), intervalMs);
    this.#timer.unref();
  }

  #sample(): TreeUsage | undefined {
    const usage = treeUsage(this.root);
    if (usage) {
      this.#lastRss = usage.rssBytes;
      this.#peakRss = Math.max(this.#peakRss, usage.rssBytes);
    }
    return usage;
  }

  /** Peak and final RSS, and the CPU time used since start(), in all and per process. */
  stop(): TreeSample | undefined {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    if (!this.#available) return undefined;
    const last = this.#sample();
    const elapsedS = (performance.now() - this.#startedAt) / 1000;
    const cores = (seconds: number) => (elapsedS > 0 ? seconds / elapsedS : Number.NaN);
    const endPids = last?.pids ?? [];
    const changed = endPids.length !== this.#perPidAtStart.size || endPids.some((pid) => !this.#perPidAtStart.has(pid));
    // Without a change, the two sums agree; with one, per process is the better lower bound.
    const perProcess = endPids.flatMap((pid): ProcessCpu[] => {
      const now = readStat(pid)?.cpuSeconds;
      if (now === undefined) return [];
      const used = Math.max(0, now - (this.#perPidAtStart.get(pid) ?? 0));
      return [{ pid, commandLine: commandLine(pid), cpuSeconds: used, cpuCores: cores(used) }];
    });
    perProcess.sort((a, b) => b.cpuSeconds - a.cpuSeconds);
    const cpuSeconds =
      changed || !last ? perProcess.reduce((sum, p) => sum + p.cpuSeconds, 0) : Math.max(0, last.cpuSeconds - this.#cpuAtStart);
    return { peakRssBytes: this.#peakRss, lastRssBytes: this.#lastRss, cpuSeconds, cpuCores: cores(cpuSeconds), perProcess, changed };
  }
}

/**
 * CPU time the whole machine has spent busy (everything but idle and I/O wait, steal included),
 * in seconds summed over cores, from /proc/stat; undefined if unreadable. The difference
 * between two readings, minus what the benchmark's own processes used, is other work on the
 * machine competing with the measurement.
 */
export function machineBusySeconds(): number | undefined {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0] ?? "";
    const ticks = line.trim().split(/\s+/).slice(1).map(Number);
    if (ticks.length < 5 || ticks.some((t) => !Number.isFinite(t))) return undefined;
    // user nice system idle iowait irq softirq steal guest guest_nice; guest time is already in user.
    const total = ticks.slice(0, 8).reduce((sum, t) => sum + t, 0);
    const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
    return (total - idle) / TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/** CPU time of a tree in seconds now, for waiting until it goes idle. */
export function treeCpuSeconds(root: number): number | undefined {
  return treeUsage(root)?.cpuSeconds;
}
