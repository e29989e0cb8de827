/**
 * The request handler of seed 000 flow 2: the consumer of `ai.inference.requests`. Each request
 * is answered (queues/inference.ts) and the result published on the `ai` exchange as
 * `ai.result.<model>`, from where `ai.inference.results` takes it to the archive. The result's id
 * is derived from the request's, so a redelivered request publishes the same result message.
 */

import { publish } from "../../shared/bus/exchange";
import { derivedId } from "../../shared/ids";
import type { Envelope, EnvelopeOf } from "../../shared/schemas/message";
import type { BatchHandler } from "../consumer";
import { ConsumerError } from "../errors";
import { type InferenceResult, infer } from "../inference";

export async function resultMessage(request: Envelope, result: InferenceResult): Promise<EnvelopeOf<"inference_result">> {
  const now = new Date().toISOString();
  return {
    id: await derivedId(request.source, request.id, "inference"),
    correlation_id: request.correlation_id,
    causation_id: request.id,
    source: "ai-inference",
    ...(request.source ? { target: request.source } : {}),
    exchange: "ai",
    routing_key: `ai.result.${result.model.replaceAll(".", "_")}`,
    type: "inference_result",
    timestamp: now,
    received_at: now,
    metadata: {},
    schema_version: 1,
    payload: result,
  };
}

export const inference: BatchHandler = async (messages, { env }) => {
  const errors = new Map<string, unknown>();
  const results: Envelope[] = [];
  await Promise.all(
    messages.map(async (message) => {
      if (message.type !== "inference_request") {
        errors.set(
          message.id,
          new ConsumerError("unexpected_type", `the inference handler takes inference requests, not ${message.type}`, { retriable: false }),
        );
        return;
      }
      results.push(await resultMessage(message, await infer(env, message.payload, { requestId: message.id })));
    }),
  );
  if (results.length > 0) await publish(env, results);
  return errors;
};
