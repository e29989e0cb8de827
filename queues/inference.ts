/**
 * AI inference (seed 000 flow 2; docs/ai.md): a request is answered from the cache first, else
 * by the model server — KServe v2 / Triton HTTP inference protocol at AI_MODEL_URL — or Workers
 * AI when the `AI` binding exists; the answer is cached. Each backend call has a time limit and
 * goes through a circuit breaker; with no backend, or when it fails, the answer is an error
 * result with a code, never silence.
 *
 * The cache is Upstash Redis (over its REST API, with @upstash/redis) when UPSTASH_REDIS_REST_URL
 * and the UPSTASH_REDIS_REST_TOKEN secret are set, else the embedded one: a D1 table.
 */
import { Redis } from "@upstash/redis/cloudflare";
import { isBrokenCircuitError } from "cockatiel";
import type { z } from "zod";
import { breakerNamed, forgetBreakers } from "../shared/breakers";
import { readConfig } from "../shared/config";
import { sha256Hex } from "../shared/ids";
import { log } from "../shared/log";
import type { InferenceRequestPayload, InferenceResultPayload } from "../shared/schemas/message";

export type InferenceRequest = z.infer<typeof InferenceRequestPayload>;
export type InferenceResult = z.infer<typeof InferenceResultPayload>;
type Outputs = NonNullable<InferenceResult["outputs"]>;

export interface InferenceCache {
  readonly kind: "upstash" | "embedded";
  get(key: string): Promise<Outputs | undefined>;
  set(key: string, outputs: Outputs, ttlSeconds: number): Promise<void>;
}

class EmbeddedCache implements InferenceCache {
  readonly kind = "embedded";
  constructor(private readonly db: D1Database) {}

  async get(key: string): Promise<Outputs | undefined> {
    const row = await this.db
      .prepare("SELECT body FROM ai_cache WHERE key = ? AND expires_at > ?")
      .bind(key, Date.now())
      .first<{ body: string }>();
    return row ? (JSON.parse(row.body) as Outputs) : undefined;
  }

  async set(key: string, outputs: Outputs, ttlSeconds: number): Promise<void> {
    await this.db
      .prepare("INSERT OR REPLACE INTO ai_cache (key, body, expires_at) VALUES (?, ?, ?)")
      .bind(key, JSON.stringify(outputs), Date.now() + ttlSeconds * 1000)
      .run();
  }
}

class UpstashCache implements InferenceCache {
  readonly kind = "upstash";
  constructor(private readonly redis: Redis) {}

  async get(key: string): Promise<Outputs | undefined> {
    return (await this.redis.get<Outputs>(`edgemesh:ai:${key}`)) ?? undefined;
  }

  async set(key: string, outputs: Outputs, ttlSeconds: number): Promise<void> {
    await this.redis.set(`edgemesh:ai:${key}`, outputs, { ex: ttlSeconds });
  }
}

/** Per Upstash call: a cache slower than this would also miss the uncached path's 2 s target. */
export const CACHE_TIMEOUT_MS = 1000;

export function inferenceCache(env: Env): InferenceCache {
  const url = readConfig(env).UPSTASH_REDIS_REST_URL;
  const token = (env as unknown as Record<string, unknown>).UPSTASH_REDIS_REST_TOKEN;
  if (url && typeof token === "string" && token) {
    // One attempt, and a short limit on it: a slow cache must not hold the request past its
    // budget; a cache that fails or times out is a miss (answered by the model).
    return new UpstashCache(new Redis({ url, token, retry: false, signal: () => AbortSignal.timeout(CACHE_TIMEOUT_MS) }));
  }
  return new EmbeddedCache(env.DB);
}

/** The cache key: the model, its version and the inputs, in a canonical order. */
export async function cacheKey(request: InferenceRequest): Promise<string> {
  const inputs = [...request.inputs].sort((a, b) => a.name.localeCompare(b.name));
  return sha256Hex(JSON.stringify([request.model, request.version ?? "", inputs.map((i) => [i.name, i.shape, i.datatype, i.data])]));
}

export class InferenceFailed extends Error {
  override name = "InferenceFailed";
  constructor(
    readonly code: "ai_unavailable" | "ai_timeout" | "ai_circuit_open" | "ai_backend_error",
    message: string,
  ) {
    super(message);
  }
}

function breakerFor(backend: string, failures: number, cooldownMs: number) {
  return breakerNamed(`ai ${backend}`, { failures, cooldownMs });
}

async function kserveV2(baseUrl: string, request: InferenceRequest, id: string, timeoutMs: number): Promise<Outputs> {
  const path = `/v2/models/${encodeURIComponent(request.model)}${request.version ? `/versions/${encodeURIComponent(request.version)}` : ""}/infer`;
  let res: Response;
  try {
    res = await fetch(`${baseUrl.replace(/\/$/, "")}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ id, inputs: request.inputs }),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (error) {
    if ((error as Error).name === "TimeoutError")
      throw new InferenceFailed("ai_timeout", `the model server did not answer within ${timeoutMs} ms`);
    throw new InferenceFailed("ai_backend_error", `the model server could not be reached: ${String(error)}`.slice(0, 500));
  }
  const text = await res.text();
  if (!res.ok) throw new InferenceFailed("ai_backend_error", `the model server answered ${res.status}: ${text.slice(0, 300)}`);
  const body = JSON.parse(text) as { outputs?: Outputs };
  if (!Array.isArray(body.outputs)) throw new InferenceFailed("ai_backend_error", "the model server's answer has no outputs");
  return body.outputs.map((o) => ({ name: o.name, shape: o.shape, datatype: o.datatype, data: o.data }));
}

/** Workers AI: the inputs as named arguments (a one-element tensor as its value); the answer as one JSON tensor. */
async function workersAi(ai: Ai, request: InferenceRequest, timeoutMs: number): Promise<Outputs> {
  const args = Object.fromEntries(request.inputs.map((i) => [i.name, i.data.length === 1 ? i.data[0] : i.data]));
  const answer = await Promise.race([
    (ai as unknown as { run(model: string, args: unknown): Promise<unknown> }).run(request.model, args),
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new InferenceFailed("ai_timeout", `Workers AI did not answer within ${timeoutMs} ms`)), timeoutMs),
    ),
  ]);
  return [{ name: "output", shape: [1], datatype: "BYTES", data: [JSON.stringify(answer)] }];
}

export interface InferOptions {
  /** The request's id, sent to the model server and named in the result. */
  requestId: string;
  cache?: InferenceCache;
}

/** Answers one request: cache, then backend; failures come back as an error result. */
export async function infer(env: Env, request: InferenceRequest, options: InferOptions): Promise<InferenceResult> {
  const started = performance.now();
  const config = readConfig(env);
  const cache = options.cache ?? inferenceCache(env);
  const key = await cacheKey(request);
  const done = (fields: Partial<InferenceResult>): InferenceResult => ({
    model: request.model,
    request_id: options.requestId,
    cached: false,
    ...fields,
    latency_ms: Math.round((performance.now() - started) * 100) / 100,
  });
  if (request.cache) {
    try {
      const hit = await cache.get(key);
      if (hit) return done({ outputs: hit, cached: true });
    } catch (error) {
      // A cache that is down is a miss, not a failure.
      log("warn", "inference cache read failed", { cache: cache.kind, error: String(error) });
    }
  }
  const ai = (env as unknown as { AI?: Ai }).AI;
  if (!config.AI_MODEL_URL && !ai) {
    return done({
      error: { code: "ai_unavailable", message: "no inference backend: set AI_MODEL_URL (KServe v2) or bind Workers AI as AI" },
    });
  }
  const backend = config.AI_MODEL_URL || "workers-ai";
  let outputs: Outputs;
  try {
    outputs = await breakerFor(backend, config.AI_BREAKER_FAILURES, config.AI_BREAKER_COOLDOWN_SECONDS * 1000).execute(() =>
      config.AI_MODEL_URL
        ? kserveV2(config.AI_MODEL_URL, request, options.requestId, config.AI_TIMEOUT_MS)
        : workersAi(ai as Ai, request, config.AI_TIMEOUT_MS),
    );
  } catch (error) {
    if (isBrokenCircuitError(error))
      return done({
        error: {
          code: "ai_circuit_open",
          message: `the inference backend failed repeatedly; retry after ${config.AI_BREAKER_COOLDOWN_SECONDS} s`,
        },
      });
    if (error instanceof InferenceFailed) return done({ error: { code: error.code, message: error.message } });
    return done({ error: { code: "ai_backend_error", message: String(error).slice(0, 500) } });
  }
  if (request.cache) {
    try {
      await cache.set(key, outputs, config.AI_CACHE_TTL_SECONDS);
    } catch (error) {
      log("warn", "inference cache write failed", { cache: cache.kind, error: String(error) });
    }
  }
  return done({ outputs });
}

/** Forgets every backend's breaker (tests). */
export function resetInferenceBreakers(): void {
  forgetBreakers("ai ");
}
