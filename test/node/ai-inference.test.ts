/**
 * AI inference against real services: @upstash/redis against a real Redis behind the Upstash REST
 * protocol (scripts/lib/upstash-rest.ts), and the local edge answering inference requests over
 * HTTP and on the `ai` exchange from that cache or from a real KServe v2 model server (MLServer
 * serving a scikit-learn model, scripts/install-mlserver.sh).
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Redis } from "@upstash/redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalEdge, startLocalEdge } from "../../scripts/lib/local-edge.ts";
import { findMlserver, type ModelServer, NO_MLSERVER_MESSAGE, startMlserver } from "../../scripts/lib/mlserver.ts";
import {
  findRedisServer,
  NO_REDIS_MESSAGE,
  type RedisServer,
  startRedis,
  startUpstashRest,
  type UpstashRest,
} from "../../scripts/lib/upstash-rest.ts";

const mlserverRoot = findMlserver();
const ready = Boolean(findRedisServer() && mlserverRoot);
if (!ready) {
  const missing = [findRedisServer() ? undefined : NO_REDIS_MESSAGE, mlserverRoot ? undefined : NO_MLSERVER_MESSAGE]
    .filter(Boolean)
    .join("; ");
  if (process.env.CI === "true") throw new Error(`the AI inference tests cannot run: ${missing}`);
  console.warn(`\n*** SKIPPING the AI inference tests against real services: ${missing}. CI fails instead of skipping. ***\n`);
}

let redis: RedisServer;
/** Between the edge and MLServer: passes requests on, or, when `hang` is set, never answers. */
let proxy: Server;
let hang = false;
let rest: UpstashRest;
let model: ModelServer;
let edge: LocalEdge;

beforeAll(async () => {
  if (!ready || !mlserverRoot) return;
  redis = await startRedis();
  rest = await startUpstashRest(redis.url);
  model = await startMlserver(mlserverRoot);
  const upstream = model.url;
  proxy = createServer(async (req, res) => {
    if (hang) return; // the socket stays open and silent
    let body = "";
    for await (const chunk of req) body += chunk;
    const answer = await fetch(`${upstream}${req.url}`, {
      method: req.method,
      headers: { "content-type": "application/json" },
      body: body || undefined,
    });
    res.writeHead(answer.status, { "content-type": "application/json" }).end(await answer.text());
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  edge = await startLocalEdge({
    vars: {
      AI_MODEL_URL: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
      AI_TIMEOUT_MS: "1000",
      UPSTASH_REDIS_REST_URL: rest.url,
      UPSTASH_REDIS_REST_TOKEN: rest.token,
    },
  });
}, 180_000);

afterAll(async () => {
  await edge?.stop();
  proxy?.closeAllConnections();
  await new Promise((resolve) => (proxy ? proxy.close(resolve) : resolve(undefined)));
  await model?.stop();
  await rest?.stop();
  await redis?.stop();
});

const hot = (temperature: number, halfHumidity: number) => ({
  model: "too-hot",
  inputs: [{ name: "readings", shape: [1, 2], datatype: "FP64", data: [temperature, halfHumidity] }],
});

interface Result {
  model: string;
  request_id: string;
  cached: boolean;
  outputs?: { name: string; data: unknown[] }[];
  error?: { code: string };
  latency_ms: number;
}

describe.skipIf(!ready)("AI inference against real services", () => {
  it("@upstash/redis works against Redis through the REST adapter (strings, JSON, expiry, pipeline, auth)", async () => {
    const client = new Redis({ url: rest.url, token: rest.token });
    await client.set("k1", { a: 1, b: "two" }, { ex: 60 });
    expect(await client.get("k1")).toEqual({ a: 1, b: "two" });
    expect(await client.ttl("k1")).toBeGreaterThan(50);
    await client.set("plain", "héllo");
    expect(await client.get("plain")).toBe("héllo");
    const p = client.pipeline();
    p.incr("n");
    p.incr("n");
    p.get("missing");
    expect(await p.exec()).toEqual([1, 2, null]);
    const wrong = new Redis({ url: rest.url, token: "wrong", retry: false });
    await expect(wrong.get("k1")).rejects.toThrow();
  });

  it("HTTP: a miss goes to MLServer (KServe v2), the same request is then a cache hit in Redis", async () => {
    const first = await edge.admin<{ result: Result }>("POST", "/v1/ai/infer", hot(36, 20));
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    expect(first.body.result).toMatchObject({ model: "too-hot", cached: false });
    expect(first.body.result.outputs?.[0]?.data).toEqual([1]);
    const again = await edge.admin<{ result: Result }>("POST", "/v1/ai/infer", hot(36, 20));
    expect(again.body.result).toMatchObject({ cached: true, outputs: first.body.result.outputs });
    const cool = await edge.admin<{ result: Result }>("POST", "/v1/ai/infer", hot(15, 20));
    expect(cool.body.result).toMatchObject({ cached: false });
    expect(cool.body.result.outputs?.[0]?.data).toEqual([0]);
    // The cache really is the Redis behind the adapter.
    const client = new Redis({ url: rest.url, token: rest.token });
    expect((await client.keys("edgemesh:ai:*")).length).toBeGreaterThanOrEqual(2);
  });

  it("HTTP: an unknown model is a clear error result from the backend, not cached", async () => {
    const res = await edge.admin<{ result: Result }>("POST", "/v1/ai/infer", { ...hot(30, 10), model: "no-such-model" });
    expect(res.status).toBe(503);
    expect(res.body.result.error?.code).toBe("ai_backend_error");
  });

  it("the ai exchange: a request on ai.model.<model> is answered on ai.result.<model>", async () => {
    const svc = await edge.admin<{ token: string }>("POST", "/v1/devices", {
      id: `ai-client-${Date.now().toString(36)}`,
      kind: "service",
      type: "ai-client",
      publish: ["ai:#"],
    });
    expect(svc.status).toBe(201);
    const id = `req-${Date.now().toString(36)}`;
    const res = await fetch(`${edge.url}/v1/exchanges/ai/publish`, {
      method: "POST",
      headers: { authorization: `Bearer ${svc.body.token}`, "content-type": "application/json" },
      body: JSON.stringify({ id, routing_key: "ai.model.too-hot", type: "inference_request", payload: hot(33, 25) }),
    });
    expect(res.status, await res.clone().text()).toBe(202);
    // The result is a message of its own on ai.result.too-hot, in the request's correlation.
    const deadline = Date.now() + 30_000;
    let result: { routing_key: string; source: string; steps: { queue: string; status: string }[] } | undefined;
    while (!result && Date.now() < deadline) {
      const { body } = await edge.admin<{
        messages: { routing_key: string; source: string; steps: { queue: string; status: string }[] }[];
      }>("GET", `/v1/messages?correlation_id=${id}&type=inference_result`);
      result = body.messages.find((m) => m.steps.some((s) => s.queue === "ai.inference.results" && s.status === "delivered"));
      if (!result) await new Promise((r) => setTimeout(r, 300));
    }
    expect(result, edge.log().slice(-2000)).toBeDefined();
    expect(result).toMatchObject({ routing_key: "ai.result.too-hot", source: "ai-inference" });
    // The queue path asked MLServer and cached the answer: the same inputs over HTTP are a hit.
    const same = await edge.admin<{ result: Result }>("POST", "/v1/ai/infer", hot(33, 25));
    expect(same.body.result).toMatchObject({ cached: true });
    expect(same.body.result.outputs?.[0]?.data).toEqual([1]);
  });

  // Last: it leaves the model server silent.
  it("a model server that does not answer: ai_timeout after AI_TIMEOUT_MS, not cached", async () => {
    hang = true;
    const res = await edge.admin<{ error: { code: string }; result: Result }>("POST", "/v1/ai/infer", hot(31.5, 12));
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe("unavailable");
    expect(res.body.result.error?.code).toBe("ai_timeout");
    const client = new Redis({ url: rest.url, token: rest.token });
    const keys = await client.keys("edgemesh:ai:*");
    hang = false;
    const after = await edge.admin<{ result: Result }>("POST", "/v1/ai/infer", hot(31.5, 12));
    expect(after.body.result.cached).toBe(false);
    expect((await client.keys("edgemesh:ai:*")).length).toBe(keys.length + 1);
  });
});
