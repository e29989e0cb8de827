/**
 * The HTTP layer's one error type, and the one place that shapes every error response:
 * `{"error":{"code","message","issues":[{"path","message"}]}}`.
 */
import type { Context } from "hono";
import { ConfigError } from "../shared/config";
import { ERROR_CODES, type ErrorCode, type Issue } from "../shared/error-codes";
import { log } from "../shared/log";

export class ApiError extends Error {
  override name = "ApiError";
  readonly code: ErrorCode;
  readonly status: number;
  readonly issues: Issue[];
  readonly headers: Record<string, string>;
  readonly extra: Record<string, unknown>;

  constructor(
    code: ErrorCode,
    message?: string,
    options: { issues?: Issue[]; headers?: Record<string, string>; extra?: Record<string, unknown>; status?: number } = {},
  ) {
    super(message ?? ERROR_CODES[code].message);
    this.code = code;
    this.status = options.status ?? ERROR_CODES[code].status;
    this.issues = options.issues ?? [];
    this.headers = options.headers ?? {};
    this.extra = options.extra ?? {};
  }

  static field(code: ErrorCode, path: string, message: string): ApiError {
    return new ApiError(code, `${path}: ${message}`, { issues: [{ path, message }] });
  }
}

export function errorBody(error: ApiError) {
  return { error: { code: error.code, message: error.message, issues: error.issues }, ...error.extra };
}

export function errorResponse(error: ApiError): Response {
  return new Response(JSON.stringify(errorBody(error)), {
    status: error.status,
    headers: { "content-type": "application/json; charset=utf-8", ...error.headers },
  });
}

export function onError(err: Error, c: Context): Response {
  if (err instanceof ApiError) return errorResponse(err);
  const requestId = c.req.header("cf-ray") ?? crypto.randomUUID();
  log("error", "unhandled error", { request_id: requestId, path: c.req.path, error: String(err), stack: err.stack });
  if (err instanceof ConfigError) return errorResponse(new ApiError("internal", err.message));
  // Durable Objects and bindings mark passing failures (an object resetting, overload) retryable:
  // a client should retry those, and a 500 would tell it not to.
  if ((err as { retryable?: boolean }).retryable === true || (err as { overloaded?: boolean }).overloaded === true) {
    return errorResponse(
      new ApiError("unavailable", `a passing failure inside the edge; retry (request ${requestId})`, { headers: { "retry-after": "1" } }),
    );
  }
  return errorResponse(new ApiError("internal", `internal error (request ${requestId}); the edge's log has the details`));
}
