/**
 * The bench Worker for bench/twin.ts: the real DeviceTwin beside a Durable Object that does
 * nothing, and a loop that drives either from inside workerd, so the figures are the twin's
 * work and not the HTTP proxy in front of `wrangler dev`.
 */
import { DurableObject } from "cloudflare:workers";
import { sha256Hex } from "../../shared/ids";

// Every Durable Object class of the Worker, as it exports them (metered, shared/billing-do.ts).
export { AgentLink, AlertActor, AutomationClock, DeviceTwin, LiveHub, MqttSession, RoomActor } from "../../functions/index";

/** The reference: an RPC method that takes the same request and answers at once. */
export class NoopObject extends DurableObject {
  async ingest(_request: unknown): Promise<{ ok: true }> {
    return { ok: true };
  }
}

interface BenchEnv {
  DEVICE_TWIN: DurableObjectNamespace;
  NOOP: DurableObjectNamespace;
}

const SECRET = "bench-secret-bench-secret-bench-secret";

type Target = { ingest(request: unknown): Promise<{ ok: boolean }> };

async function run(
  target: Target,
  n: number,
  concurrency: number,
  readings: number,
): Promise<{ elapsedMs: number; latencies: number[]; failures: number }> {
  const latencies: number[] = [];
  let next = 0;
  let failures = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const payload: Record<string, number> = {};
      for (let r = 0; r < readings; r++) payload[`m${r}`] = i + r;
      const t0 = performance.now();
      const outcome = await target.ingest({
        secret: SECRET,
        items: [{ id: `bench-${started}-${i}`, payload }],
        preRejected: [],
        defaultType: "telemetry",
        allowedTypes: ["telemetry"],
        transport: "https",
      });
      latencies.push(performance.now() - t0);
      if (!outcome.ok) failures++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { elapsedMs: performance.now() - started, latencies, failures };
}

export default {
  async fetch(request: Request, env: BenchEnv): Promise<Response> {
    const url = new URL(request.url);
    const twinName = url.searchParams.get("twin") ?? "bench-twin";
    if (url.pathname === "/setup") {
      const twin = env.DEVICE_TWIN.getByName(twinName) as unknown as { provision(profile: unknown): Promise<void> };
      await twin.provision({
        id: twinName,
        kind: "device",
        type: "bench",
        class: "mains",
        room: null,
        publish: ["sensors:#"],
        rate: { per_second: 10_000, burst: 100_000 },
        token_hash: await sha256Hex(SECRET),
      });
      return Response.json({ ok: true });
    }
    if (url.pathname === "/run") {
      const n = Number(url.searchParams.get("n") ?? 1000);
      const concurrency = Number(url.searchParams.get("concurrency") ?? 1);
      const readings = Number(url.searchParams.get("readings") ?? 1);
      const target = (url.searchParams.get("target") === "noop"
        ? env.NOOP.getByName("noop")
        : env.DEVICE_TWIN.getByName(twinName)) as unknown as Target;
      return Response.json(await run(target, n, concurrency, readings));
    }
    return new Response("not found", { status: 404 });
  },
};
