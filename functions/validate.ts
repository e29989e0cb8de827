/** zod validation of request parts, answering with the project's own error body. */
import { zValidator } from "@hono/zod-validator";
import type { Context, ValidationTargets } from "hono";
import type { z } from "zod";
import type { Failure } from "../durable-objects/device-twin";
import { readConfig } from "../shared/config";
import { type ErrorCode, toIssues } from "../shared/error-codes";
import { DeviceId } from "../shared/schemas/message";
import { jsonLimits, parseJsonText, readLimitedText } from "./body";
import { ApiError } from "./errors";
import { type AppEnv, authFailed } from "./middleware/auth";

/** MAX_BODY_BYTES's default, for a body read without the route's configuration. */
const DEFAULT_MAX_BODY_BYTES = 1_048_576;

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

/**
 * Parses a JSON body for a zod-validated route, answering 415/400/413 with our codes: under
 * MAX_BODY_BYTES, MAX_JSON_DEPTH and MAX_JSON_BREADTH, with no prototype key (body.ts). Given the
 * route's context it reads the limits from its configuration; given the bare request, the defaults.
 */
export async function jsonBody(from: Request | Context<AppEnv>): Promise<unknown> {
  const request = from instanceof Request ? from : from.req.raw;
  const config = from instanceof Request ? undefined : readConfig(from.env);
  const type = (request.headers.get("content-type") ?? "").split(";")[0]?.trim().toLowerCase();
  if (type !== "application/json") throw new ApiError("unsupported_media_type", "send application/json");
  const text = await readLimitedText(request, config?.MAX_BODY_BYTES ?? DEFAULT_MAX_BODY_BYTES);
  return parseJsonText(text, jsonLimits(config));
}

/**
 * A device-credentialed body: read and validated only after the token's form was checked, and
 * any failure of it (415, 413, 400) counted as a failed authentication when the secret turns out
 * to be wrong — so a bad credential learns nothing from the body and meets the failed-auth limit.
 * The secret is checked only then, which spares the hot path a round trip to the twin.
 */
export async function deviceBody<T extends z.ZodType>(
  c: Context<AppEnv>,
  device: { secret: string; twin: { checkSecret(secret: string): Promise<boolean> } },
  schema: T,
): Promise<z.infer<T>> {
  try {
    return parseWith(schema, await jsonBody(c));
  } catch (error) {
    if (error instanceof ApiError && !(await device.twin.checkSecret(device.secret))) return authFailed(c, "the device token is not valid");
    throw error;
  }
}
