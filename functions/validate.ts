/** zod validation of request parts, answering with the project's own error body. */
import { zValidator } from "@hono/zod-validator";
import type { ValidationTargets } from "hono";
import type { z } from "zod";
import type { Failure } from "../durable-objects/device-twin";
import { type ErrorCode, toIssues } from "../shared/error-codes";
import { DeviceId } from "../shared/schemas/message";
import { ApiError } from "./errors";

/** Parses a request part with a zod schema; a failure is `code` (400) naming every field at fault. */
export function parseWith<T extends z.ZodType>(schema: T, value: unknown, code: ErrorCode = "invalid_payload", whole = "body"): z.infer<T> {
  const result = schema.safeParse(value);
  if (!result.success) throw invalid(result.error, code, whole);
  return result.data;
}

function invalid(error: { issues: readonly z.core.$ZodIssue[] }, code: ErrorCode, whole: string): ApiError {
  const issues = toIssues(error.issues);
  return new ApiError(code, issues.map((i) => `${i.path || whole}: ${i.message}`).join("; "), { issues });
}

/** A device id from the URL; anything that cannot be one is simply not found. */
export function deviceIdParam(raw: string): string {
  const parsed = DeviceId.safeParse(raw);
  if (!parsed.success) throw ApiError.field("not_found", "id", `"${raw.slice(0, 80)}" is not a device id`);
  return parsed.data;
}

/** Answers a Durable Object's failure result as the HTTP error it names. */
export function fail(failure: Failure): never {
  throw new ApiError(failure.code, failure.message, {
    issues: failure.issues,
    headers: failure.retryAfterSeconds ? { "retry-after": String(failure.retryAfterSeconds) } : {},
  });
}

export function validate<T extends z.ZodType, Target extends keyof ValidationTargets>(target: Target, schema: T) {
  return zValidator(target, schema, (result) => {
    if (!result.success) throw invalid(result.error, target === "query" ? "invalid_query" : "invalid_payload", target);
  });
}

/** Parses a JSON body for a zod-validated route, answering 415/400 with our codes. */
export async function jsonBody(request: Request): Promise<unknown> {
  const type = (request.headers.get("content-type") ?? "").split(";")[0]?.trim().toLowerCase();
  if (type !== "application/json") throw new ApiError("unsupported_media_type", "send application/json");
  try {
    return await request.json();
  } catch (error) {
    throw new ApiError("invalid_json", `the body is not valid JSON: ${(error as Error).message}`);
  }
}
