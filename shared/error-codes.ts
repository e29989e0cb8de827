/**
 * Every machine-readable error code the edge answers with, its HTTP status and what it means.
 * docs/errors.md is written from this table; a test checks that the two agree.
 */
export const ERROR_CODES = {
  unauthorized: { status: 401, message: "Missing or invalid credentials" },
  too_many_failed_attempts: { status: 429, message: "Too many failed authentication attempts from this address" },
  forbidden: { status: 403, message: "The credential may not do this" },
  not_found: { status: 404, message: "No such resource" },
  conflict: { status: 409, message: "The resource already exists" },
  precondition_failed: { status: 412, message: "The resource changed since the version you sent (If-Match)" },
  outbox_full: { status: 409, message: "The device has too many pending commands" },
  command_finished: { status: 409, message: "The command already finished" },
  payload_too_large: { status: 413, message: "The request body is over the size limit" },
  message_too_large: { status: 413, message: "A message is over the per-message size limit" },
  batch_too_large: { status: 413, message: "The batch has more messages than allowed" },
  unsupported_media_type: { status: 415, message: "Send application/json or application/x-ndjson" },
  invalid_json: { status: 400, message: "The body is not valid JSON" },
  too_deep: { status: 400, message: "The JSON nests deeper, or holds more entries in one object or array, than allowed" },
  invalid_payload: { status: 400, message: "The message does not match its schema" },
  invalid_query: { status: 400, message: "A query parameter is invalid" },
  unknown_exchange: { status: 404, message: "No such exchange" },
  timestamp_in_future: { status: 400, message: "The timestamp is further in the future than the allowed clock skew" },
  timestamp_too_old: { status: 400, message: "The timestamp is older than the allowed age" },
  source_mismatch: { status: 403, message: "The message names a source other than the credential's device" },
  empty_batch: { status: 400, message: "The batch holds no message" },
  rate_limited: { status: 429, message: "The device is over its message rate" },
  unavailable: { status: 503, message: "A dependency is unavailable; retry later" },
  internal: { status: 500, message: "Internal error" },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** One problem with one field: `path` is dot-joined (`payload.temperature`), empty for the whole. */
export interface Issue {
  path: string;
  message: string;
}

/** Turns zod's issue list into ours: dot paths, one message each. */
export function toIssues(
  issues: readonly { path: readonly PropertyKey[]; message: string; code?: string; keys?: readonly string[] }[],
  prefix = "",
): Issue[] {
  const join = (parts: readonly PropertyKey[]) => [prefix, ...parts.map(String)].filter((p) => p !== "").join(".");
  // zod reports a strict object's unknown keys as one issue of the object: name each key instead.
  return issues.flatMap((issue) =>
    issue.code === "unrecognized_keys" && issue.keys
      ? issue.keys.map((key) => ({ path: join([...issue.path, key]), message: "is not recognized" }))
      : [{ path: join(issue.path), message: issue.message }],
  );
}
