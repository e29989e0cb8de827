/** AI inference inside workerd: the embedded cache's hit and miss paths, and the error result with no backend. */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { cacheKey, infer, inferenceCache, resetInferenceBreakers } from "../../queues/inference";
import { InferenceRequestPayload } from "../../shared/schemas/message";
import { ADMIN, call, eventually, json, uniqueId } from "./helpers";

const H = { ...ADMIN, "content-type": "application/json" };

function request(x: number, extra: Record<string, unknown> = {}) {
  return { model: "too-hot", inputs: [{ name: "readings", shape: [1, 2], datatype: "FP64", data: [x, 10] }], ...extra };
}

interface Result {
  cached: boolean;
  outputs?: { data: unknown[] }[];
  error?: { code: string; message: string };
  request_id: string;
}

describe("inference", () => {
  it("with no backend: a clear error result (503 ai_unavailable), nothing cached", async () => {
    const res = await call("/v1/ai/infer", { method: "POST", headers: H, body: JSON.stringify(request(Math.random())) });
    expect(res.status).toBe(503);
    const { result, error } = await json<{ result: Result; error: { code: string } }>(res);
    expect(error.code).toBe("unavailable");
    expect(result.cached).toBe(false);
    expect(result.error?.code).toBe("ai_unavailable");
    expect(result.error?.message).toContain("AI_MODEL_URL");
  });

  it("answers from the embedded cache (D1) on a hit, and skips it when the request says cache: false", async () => {
    const body = request(Math.random());
    const cache = inferenceCache(env);
    expect(cache.kind).toBe("embedded");
    const outputs = [{ name: "predict", shape: [1, 1], datatype: "INT64" as const, data: [1] }];
    await cache.set(await cacheKey(InferenceRequestPayload.parse(body)), outputs, 60);
    const hit = await json<{ result: Result }>(await call("/v1/ai/infer", { method: "POST", headers: H, body: JSON.stringify(body) }));
    expect(hit.result).toMatchObject({ cached: true, outputs });
    const bypass = await call("/v1/ai/infer", { method: "POST", headers: H, body: JSON.stringify({ ...body, cache: false }) });
    expect(bypass.status).toBe(503);
    // An expired entry is a miss.
    const stale = request(Math.random());
    const staleKey = await cacheKey(InferenceRequestPayload.parse(stale));
    await cache.set(staleKey, outputs, 60);
    await env.DB.prepare("UPDATE ai_cache SET expires_at = ? WHERE key = ?")
      .bind(Date.now() - 1, staleKey)
      .run();
    expect((await call("/v1/ai/infer", { method: "POST", headers: H, body: JSON.stringify(stale) })).status).toBe(503);
  });

  it("validates the request naming the field", async () => {
    const res = await call("/v1/ai/infer", {
      method: "POST",
      headers: H,
      body: JSON.stringify({ model: "m", inputs: [{ name: "x", shape: [1], datatype: "FP99", data: [1] }] }),
    });
    expect(res.status).toBe(400);
    const body = await json<{ error: { issues: { path: string }[] } }>(res);
    expect(body.error.issues.map((i) => i.path)).toEqual(["inputs.0.datatype"]);
  });

  it("a request on the ai exchange is answered on ai.result.<model> (here: the error result) through the real queues", async () => {
    const svc = await json<{ token: string }>(
      await call("/v1/devices", {
        method: "POST",
        headers: H,
        body: JSON.stringify({ id: uniqueId("aic"), kind: "service", type: "ai-client", publish: ["ai:#"] }),
      }),
    );
    const id = uniqueId("req");
    const res = await call("/v1/exchanges/ai/publish", {
      method: "POST",
      headers: { authorization: `Bearer ${svc.token}`, "content-type": "application/json" },
      body: JSON.stringify({ id, routing_key: "ai.model.too-hot", type: "inference_request", payload: request(1) }),
    });
    expect(res.status, await res.clone().text()).toBe(202);
    const found = await eventually(
      async () => {
        const body = await json<{ messages: { routing_key: string; source: string; steps: { queue: string; status: string }[] }[] }>(
          await call(`/v1/messages?correlation_id=${id}&type=inference_result`, { headers: ADMIN }),
        );
        return body.messages.find((m) => m.steps.some((s) => s.queue === "ai.inference.results" && s.status === "delivered"));
      },
      15_000,
      "the inference result",
    );
    expect(found).toMatchObject({ routing_key: "ai.result.too-hot", source: "ai-inference" });
  });

  it("a failing model server: error results, then the breaker answers at once (ai_circuit_open)", async () => {
    resetInferenceBreakers();
    // Nothing listens on port 9: each call is a real connection failure.
    const withServer = { ...env, AI_MODEL_URL: "http://127.0.0.1:9" } as unknown as Env;
    const codes: string[] = [];
    for (let i = 0; i < 7; i++) {
      const result = await infer(withServer, InferenceRequestPayload.parse({ ...request(Math.random()), cache: false }), {
        requestId: `r${i}`,
      });
      codes.push(result.error?.code ?? "none");
    }
    expect(codes).toEqual([
      "ai_backend_error",
      "ai_backend_error",
      "ai_backend_error",
      "ai_backend_error",
      "ai_backend_error",
      "ai_circuit_open",
      "ai_circuit_open",
    ]);
    resetInferenceBreakers();
  });
});
