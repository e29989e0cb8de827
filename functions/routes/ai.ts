/**
 * The HTTP side of AI inference (docs/ai.md): `POST /v1/ai/infer` answers at once — from the
 * cache or the backend — and, like the queue path, publishes the result on the `ai` exchange so
 * it is archived. No backend, or a failing one, is a 503 `unavailable` error that also carries
 * the error result (its `code` says which: ai_unavailable, ai_timeout, ai_circuit_open,
 * ai_backend_error).
 */
import { Hono } from "hono";
import { resultMessage } from "../../queues/consumers/inference";
import { infer } from "../../queues/inference";
import { publish } from "../../shared/bus/exchange";
import { newMessageId } from "../../shared/ids";
import { log } from "../../shared/log";
import { InferenceRequestPayload } from "../../shared/schemas/message";
import { ApiError } from "../errors";
import { type AppEnv, requireRole } from "../middleware/auth";
import { jsonBody, parseWith } from "../validate";

export const aiRoutes = new Hono<AppEnv>().post("/infer", requireRole("operator"), async (c) => {
  const request = parseWith(InferenceRequestPayload, await jsonBody(c));
  const id = newMessageId();
  const result = await infer(c.env, request, { requestId: id });
  const now = new Date().toISOString();
  const message = await resultMessage(
    {
      id,
      correlation_id: id,
      source:
        c
          .get("principal")
          .sub.replace(/[^A-Za-z0-9._:-]/g, "_")
          .slice(0, 128) || "http",
      exchange: "ai",
      routing_key: `ai.model.${request.model.replaceAll(".", "_")}`,
      type: "inference_request",
      timestamp: now,
      received_at: now,
      metadata: {},
      schema_version: 1,
      payload: request,
    },
    result,
  );
  // The archive copy must not hold up the answer.
  c.executionCtx.waitUntil(
    publish(c.env, [message]).catch((error: unknown) => log("warn", "inference result not published", { error: String(error) })),
  );
  if (result.error)
    throw new ApiError("unavailable", `${result.error.code}: ${result.error.message}`, {
      extra: { result },
      headers: { "retry-after": "5" },
    });
  return c.json({ result });
});
