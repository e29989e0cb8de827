/**
 * bench/ingest's measurements: the targets it posts at (an edge, its device tokens and how to
 * judge an answer), the requests of a scenario, and one measurement of a scenario against a
 * target — warm-up, load, and the CPU and memory of both edges, the load generator and the rest
 * of the machine meanwhile.
 */
import { randomBytes } from "node:crypto";
import type { LocalEdge } from "../../scripts/lib/local-edge.ts";
import { type Judgement, type LoadRequest, type LoadResponse, type LoadResult, runLoad } from "./load.ts";
import { machineBusySeconds, type ProcessCpu, TreeSampler, treeCpuSeconds } from "./proc.ts";
import { summarize } from "./stats.ts";

export interface Target {
  name: "reference" | "edgemesh";
  edge: LocalEdge;
  /** Device credentials to rotate over (the reference ignores them). */
  tokens: string[];
  judge: (response: LoadResponse, request: LoadRequest) => Judgement;
  /** RSS of the tree right after start, before any load. */
  idleRssBytes?: number | undefined;
}

/** The settings a measurement takes (bench/ingest.ts reads them from flags and the environment). */
export interface MeasureSettings {
  durationS: number;
  concurrency: number;
  warmupRequests: number;
  warmupMaxMs: number;
  /** The longest a request may take; a slower one is an error. */
  timeoutMs: number;
  /** How long to wait for both edges to go quiet (queue consumers draining) before a measurement. */
  settleMaxMs: number;
}

function parseJson(body: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(body);
    return typeof value === "object" && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** edgemesh: 202 with `accepted`; anything else is an error, named by status and error code. */
export function judgeEdgemesh(response: LoadResponse): Judgement {
  const body = parseJson(response.body);
  if (response.status !== 202) {
    const error = body?.error as { code?: unknown } | string | undefined;
    const code = typeof error === "object" ? error?.code : (error ?? body?.code);
    return { ok: false, error: `HTTP ${response.status}${code ? ` ${String(code)}` : ""}` };
  }
  const accepted = body?.accepted;
  if (typeof accepted !== "number") return { ok: false, error: "HTTP 202 without a numeric `accepted`" };
  const rejected = Array.isArray(body?.rejected) ? body.rejected.length : 0;
  const duplicates = typeof body?.duplicates === "number" ? body.duplicates : 0;
  return { ok: true, accepted, duplicates, rejected };
}

/** The reference accepts nothing for real: every message of a 202 answer counts as accepted. */
export function judgeReference(response: LoadResponse, request: LoadRequest): Judgement {
  return response.status === 202 ? { ok: true, accepted: request.messages } : { ok: false, error: `HTTP ${response.status}` };
}

export interface Scenario {
  name: string;
  /** Messages per request; 1 posts a bare object, more post a JSON array. */
  messages: number;
}

const runTag = `bench-${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`;
let messageSeq = 0;

function reading(timestamp: string): Record<string, unknown> {
  const n = messageSeq++;
  return { id: `${runTag}-${n}`, timestamp, payload: { temperature: 18 + (n % 80) / 10 } };
}

function requestFor(target: Target, scenario: Scenario, seq: number): LoadRequest {
  const timestamp = new Date().toISOString();
  const body =
    scenario.messages === 1
      ? JSON.stringify(reading(timestamp))
      : JSON.stringify(Array.from({ length: scenario.messages }, () => reading(timestamp)));
  const token = target.tokens[seq % target.tokens.length] ?? "none";
  return {
    path: "/v1/telemetry",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body,
    messages: scenario.messages,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Waits until both edges are quiet (under 5 % of a core over half a second), so that one edge's
 * leftover work — edgemesh's queue consumers draining the last run — does not land in the next
 * measurement. Bounded by settings.settleMaxMs; returns how long it waited.
 * measurement. Bounded by settings.settleMaxMs; returns how long it waited.
 */
async function settle(targets: readonly Target[], settings: MeasureSettings): Promise<number> {
  const begin = performance.now();
  const cpu = () => targets.reduce((sum, t) => sum + (treeCpuSeconds(t.edge.process.pid ?? 0) ?? 0), 0);
  let before = cpu();
  while (performance.now() - begin < settings.settleMaxMs) {
    await sleep(500);
    const now = cpu();
    if ((now - before) / 0.5 < 0.05) break;
    before = now;
  }
  return performance.now() - begin;
}

export interface Row {
  scenario: Scenario;
  target: Target;
  result: LoadResult;
  latency: ReturnType<typeof summarize>;
  /** Peak RSS of the edge's process tree, or of the load generator when /proc is not readable. */
  rssBytes: number;
  edgeCpuCores: number;
  edgeCpuByProcess: ProcessCpu[];
  generatorCpuCores: number;
  /** CPU the edge not being measured used meanwhile, in cores. */
  idleEdgeCpuCores: number;
  /** CPU the rest of the machine used meanwhile (neither edge nor the load generator), in cores. */
  otherCpuCores: number;
  /** An edge's process tree changed during the measurement (a reload): the figures are suspect. */
  reloaded: boolean;
  settledMs: number;
}

async function measureOnce(scenario: Scenario, target: Target, all: readonly Target[], settings: MeasureSettings): Promise<Row> {
  const settledMs = await settle(all, settings);
  const common = {
    url: target.edge.url,
    concurrency: settings.concurrency,
    timeoutMs: settings.timeoutMs,
    next: (seq: number) => requestFor(target, scenario, seq),
    judge: target.judge,
  };
  if (settings.warmupRequests > 0) {
    const warm = await runLoad({ ...common, durationMs: settings.warmupMaxMs, maxRequests: settings.warmupRequests });
    if (warm.errorCount > 0) {
      const first = [...warm.errors.keys()][0];
      console.error(`\n  warning: ${warm.errorCount} of ${warm.requests} warm-up requests to ${target.name} failed (${first})`);
    }
  }
  const samplers = all.map((t) => ({ target: t, sampler: new TreeSampler(t.edge.process.pid ?? 0) }));
  const cpuBefore = process.cpuUsage();
  const busyBefore = machineBusySeconds();
  const wallBefore = performance.now();
  let peakGeneratorRss = process.memoryUsage.rss();
  const rssTimer = setInterval(() => {
    peakGeneratorRss = Math.max(peakGeneratorRss, process.memoryUsage.rss());
  }, 250);
  for (const s of samplers) s.sampler.start();
  const result = await runLoad({ ...common, durationMs: settings.durationS * 1000 });
  const usages = samplers.map((s) => ({ target: s.target, usage: s.sampler.stop() }));
  const busyAfter = machineBusySeconds();
  clearInterval(rssTimer);
  const cpu = process.cpuUsage(cpuBefore);
  const wallS = (performance.now() - wallBefore) / 1000;
  const generatorCpuCores = (cpu.user + cpu.system) / 1e6 / wallS;
  const usage = usages.find((u) => u.target === target)?.usage;
  // Everything else the machine did meanwhile, besides both edges and this process.
  const ours = usages.reduce((sum, u) => sum + (u.usage?.cpuCores ?? 0), 0) + generatorCpuCores;
  const idleEdgeCpuCores = usages.filter((u) => u.target !== target).reduce((sum, u) => sum + (u.usage?.cpuCores ?? 0), 0);
  const otherCpuCores =
    busyBefore === undefined || busyAfter === undefined || !usage ? Number.NaN : Math.max(0, (busyAfter - busyBefore) / wallS - ours);
  return {
    scenario,
    target,
    result,
    latency: summarize(result.latenciesMs),
    rssBytes: usage?.peakRssBytes ?? peakGeneratorRss,
    edgeCpuCores: usage?.cpuCores ?? Number.NaN,
    edgeCpuByProcess: usage?.perProcess ?? [],
    generatorCpuCores,
    idleEdgeCpuCores,
    otherCpuCores,
    reloaded: usages.some((u) => u.usage?.changed === true),
    settledMs,
  };
}

/**
 * One measurement, taken again once if an edge reloaded during it: `wrangler dev` restarts
 * workerd when a watched source file changes (someone editing the work tree), and such a
 * measurement mixes two runtimes and a rebuild.
 */
export async function measure(scenario: Scenario, target: Target, all: readonly Target[], settings: MeasureSettings): Promise<Row> {
  const first = await measureOnce(scenario, target, all, settings);
  if (!first.reloaded) return first;
  process.stdout.write("an edge reloaded during the measurement (a watched file changed); measuring again… ");
  return measureOnce(scenario, target, all, settings);
}
