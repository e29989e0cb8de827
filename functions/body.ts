/**
 * Reading a request body under its size limit and splitting it into messages: one JSON object,
 * a JSON array, or NDJSON (one message a line, where a bad line is rejected alone).
 */
import type { Rejection } from "../durable-objects/device-twin";
import { ApiError } from "./errors";

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

export function parseBatch(text: string, format: BodyFormat, maxMessages: number): ParsedBatch {
  if (format === "json") {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new ApiError("invalid_json", `the body is not valid JSON: ${(error as Error).message}`);
    }
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
    try {
      items.push(JSON.parse(line));
    } catch (error) {
      items.push(null);
      preRejected.push({ index, code: "invalid_json", issues: [{ path: "", message: `line ${index + 1}: ${(error as Error).message}` }] });
    }
  });
  return { items, preRejected, single: false };
}

function checkCount(count: number, max: number): void {
  if (count === 0) throw new ApiError("empty_batch", "the body holds no message");
  if (count > max) throw new ApiError("batch_too_large", `${count} messages; the limit is ${max} per request`);
}
