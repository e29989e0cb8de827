/**
 * Reading a request body under its size limit and splitting it into messages: one JSON object,
 * a JSON array, or NDJSON (one message a line, where a bad line is rejected alone).
 */
import type { Rejection } from "../durable-objects/device-twin";
import type { Config } from "../shared/config";
import type { ErrorCode } from "../shared/error-codes";
import { DEFAULT_JSON_LIMITS, type JsonLimits, jsonLimitsOf, parseJsonSafe, type SafeJsonFailure } from "../shared/safe-json";
import { ApiError } from "./errors";

/** The JSON limits of the edge's configuration (MAX_JSON_DEPTH, MAX_JSON_BREADTH). */
export function jsonLimits(config?: Pick<Config, "MAX_JSON_DEPTH" | "MAX_JSON_BREADTH">): JsonLimits {
  return jsonLimitsOf(config);
}

/** The error code a failed safe parse answers with: a forbidden key is a field that does not match. */
function failureCode(failure: SafeJsonFailure): ErrorCode {
  return failure.code === "forbidden_key" ? "invalid_payload" : failure.code;
}

/** The one JSON entry of every route: parses under the depth, breadth and key limits, or throws a 400. */
export function parseJsonText(text: string, limits: JsonLimits = DEFAULT_JSON_LIMITS, prefix = ""): unknown {
  const result = parseJsonSafe(text, limits);
  if (result.ok) return result.value;
  const path = [prefix, result.path].filter(Boolean).join(".");
  const message = result.code === "invalid_json" ? `the body is ${result.message}` : `${path || "body"}: ${result.message}`;
  throw new ApiError(failureCode(result), message, { issues: result.code === "invalid_json" ? [] : [{ path, message: result.message }] });
}

export interface ParsedBatch {
  items: unknown[];
  preRejected: Rejection[];
  /** Whether the sender posted a single object (answers then use that message's own status). */
  single: boolean;
}

export async function readLimitedText(request: Request, maxBytes: number): Promise<string> {
  const declared = Number(request.headers.get("content-length") ?? Number.NaN);
  if (declared > maxBytes) throw new ApiError("payload_too_large", `the body is ${declared} bytes; the limit is ${maxBytes}`);
  if (!request.body) return "";
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel();
      throw new ApiError("payload_too_large", `the body is over the limit of ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new ApiError("invalid_json", "the body is not valid UTF-8");
  }
}

type BodyFormat = "json" | "ndjson";

export function bodyFormat(contentType: string | undefined): BodyFormat {
  const mediaType = (contentType ?? "").split(";")[0]?.trim().toLowerCase();
  if (mediaType === "application/json") return "json";
  if (mediaType === "application/x-ndjson" || mediaType === "application/jsonl") return "ndjson";
  throw new ApiError("unsupported_media_type", `content type "${contentType ?? "(none)"}" is not application/json or application/x-ndjson`);
}

export function parseBatch(text: string, format: BodyFormat, maxMessages: number, limits: JsonLimits = DEFAULT_JSON_LIMITS): ParsedBatch {
  if (format === "json") {
    const value = parseJsonText(text, limits);
    const single = !Array.isArray(value);
    const items = single ? [value] : (value as unknown[]);
    checkCount(items.length, maxMessages);
    return { items, preRejected: [], single };
  }
  const lines = text.split("\n").filter((line) => line.trim() !== "");
  checkCount(lines.length, maxMessages);
  const items: unknown[] = [];
  const preRejected: Rejection[] = [];
  lines.forEach((line, index) => {
    const result = parseJsonSafe(line, limits);
    if (result.ok) {
      items.push(result.value);
      return;
    }
    items.push(null);
    preRejected.push({
      index,
      code: failureCode(result),
      issues: [{ path: result.path, message: `line ${index + 1}: ${result.message}` }],
    });
  });
  return { items, preRejected, single: false };
}

function checkCount(count: number, max: number): void {
  if (count === 0) throw new ApiError("empty_batch", "the body holds no message");
  if (count > max) throw new ApiError("batch_too_large", `${count} messages; the limit is ${max} per request`);
}
