/**
 * The benchmarks' reference: a bare Worker that answers every request with 202 and does nothing
 * else. Measured in the same run as edgemesh, it shows what `wrangler dev` + workerd + HTTP cost
 * on this machine before any edgemesh code runs.
 *
 * bench/latency's reference is the bare queue round trip beside it: `POST /queue?n=N` sends N
 * messages, each carrying the time the request arrived, to a queue whose consumer does nothing
 * but note, per message, how long after that it ran (`GET /queue/lags` answers the notes in ms
 * and forgets them). Locally the consumer runs in this isolate, so the notes are one array.
 *
 * bench/agent's reference is `POST /v1/agent/messages`: it reads the agent's batch (gunzipped as
 * edgemesh does) and answers every message `stored`, the answer the agent needs to acknowledge
 * it, and does nothing else.
 */
interface Env {
  ROUND_TRIP?: Queue<{ t: number }>;
}

let lags: number[] = [];

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/queue" && env.ROUND_TRIP) {
      const t = Date.now();
      const n = Math.min(100, Math.max(1, Number(url.searchParams.get("n")) || 1));
      await env.ROUND_TRIP.sendBatch(Array.from({ length: n }, () => ({ body: { t } })));
      return new Response(`{"accepted":${n}}`, { status: 202, headers: { "content-type": "application/json" } });
    }
    if (url.pathname === "/v1/agent/messages" && request.body) {
      const body =
        request.headers.get("content-encoding") === "gzip" ? request.body.pipeThrough(new DecompressionStream("gzip")) : request.body;
      const { messages } = JSON.parse(await new Response(body).text()) as { messages: { id?: string }[] };
      const results = messages.map((m) => ({ status: "stored", id: m.id ?? "" }));
      return Response.json({ agent: "bench-reference", results });
    }
    if (url.pathname === "/queue/lags") {
      const taken = lags;
      lags = [];
      return Response.json({ lags_ms: taken });
    }
    return new Response('{"accepted":1}', { status: 202, headers: { "content-type": "application/json" } });
  },
  async queue(batch: MessageBatch<{ t: number }>): Promise<void> {
    const now = Date.now();
    for (const m of batch.messages) lags.push(now - m.body.t);
  },
};
