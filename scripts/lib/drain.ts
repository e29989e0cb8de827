/**
 * Draining a local edge before it stops (scripts/dev.sh on Ctrl-C/SIGTERM, and the tests):
 * wrangler's local queue broker keeps queued messages in memory only, so stopping wrangler while
 * messages wait there loses readings the edge already accepted. The edge is told to take no more
 * requests (503 + Retry-After), then this waits — with a progress line and a bound — until the
 * consumers are idle and every queue's backlog is back to what it was when the edge started
 * (functions/routes/local.ts reports both).
 */

export interface DrainStatus {
  draining: boolean;
  pending: Record<string, number>;
  activity: number;
}

export interface DrainResult {
  drained: boolean;
  /** Messages still in the queues when the wait ended (0 when drained). */
  left: number;
  waitedMs: number;
}

export async function drainStatus(url: string, adminToken: string, method: "GET" | "POST" = "GET"): Promise<DrainStatus> {
  const res = await fetch(`${url}/v1/local/drain`, {
    method,
    headers: { authorization: `Bearer ${adminToken}` },
    signal: AbortSignal.timeout(10_000),
  });
  if (!res.ok) throw new Error(`${method} /v1/local/drain answered ${res.status}: ${(await res.text()).slice(0, 300)}`);
  return (await res.json()) as DrainStatus;
}

/** Messages above the baseline, over all queues. */
export function backlog(status: DrainStatus, baseline: Record<string, number> = {}): number {
  return Object.entries(status.pending).reduce((sum, [queue, n]) => sum + Math.max(0, n - Math.max(0, baseline[queue] ?? 0)), 0);
}

export interface DrainOptions {
  /** Queue backlogs at the edge's start: what an earlier hard stop lost, never to be waited for. */
  baseline?: Record<string, number>;
  /** The longest wait (the archive queues batch for up to 30 s). */
  timeoutMs?: number;
  /** How long the consumers must have been idle. */
  quietMs?: number;
  pollMs?: number;
  /** Called about once a second with a progress line. */
  progress?: (line: string) => void;
}

export async function drainEdge(url: string, adminToken: string, options: DrainOptions = {}): Promise<DrainResult> {
  const { baseline = {}, timeoutMs = 60_000, quietMs = 2_000, pollMs = 250, progress } = options;
  const started = Date.now();
  let status = await drainStatus(url, adminToken, "POST");
  let lastActivity = status.activity;
  let lastChange = Date.now();
  let lastReport = 0;
  for (;;) {
    const left = backlog(status, baseline);
    const idle = Date.now() - lastChange >= quietMs;
    const waitedMs = Date.now() - started;
    if (left === 0 && idle) return { drained: true, left, waitedMs };
    if (waitedMs >= timeoutMs) return { drained: false, left, waitedMs };
    if (progress && Date.now() - lastReport >= 1000) {
      lastReport = Date.now();
      progress(
        `draining the local queues: ${left} message${left === 1 ? "" : "s"} left, consumers ${idle ? "idle" : "busy"} (${Math.round(waitedMs / 1000)} s of at most ${Math.round(timeoutMs / 1000)} s)`,
      );
    }
    await new Promise((r) => setTimeout(r, pollMs));
    status = await drainStatus(url, adminToken);
    if (status.activity !== lastActivity) {
      lastActivity = status.activity;
      lastChange = Date.now();
    }
  }
}
