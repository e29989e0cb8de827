/** The clients' one edge error (shared/edge-error.ts): what it reads from an error answer. */
import { describe, expect, it } from "vitest";
import { EdgeError, retryAfterMs } from "../../shared/edge-error.ts";

const headers = (values: Record<string, string>) => new Headers(values);

describe("EdgeError", () => {
  it("reads the edge's error body: code, message, issues and the field at fault", () => {
    const body = {
      error: {
        code: "invalid_payload",
        message: "payload.temperature: not a number",
        issues: [{ path: "payload.temperature", message: "not a number" }],
      },
    };
    const error = EdgeError.fromAnswer(400, JSON.stringify(body));
    expect(error).toBeInstanceOf(Error);
    expect(error).toMatchObject({ name: "EdgeError", status: 400, code: "invalid_payload", message: "payload.temperature: not a number" });
    expect(error.field).toBe("payload.temperature");
    expect(error.retriable).toBe(false);
    expect(error.body).toEqual(body);
  });

  it("makes a code of the status when the answer is not the edge's error body", () => {
    const error = EdgeError.fromAnswer(502, "<html>Bad gateway</html>");
    expect(error).toMatchObject({ status: 502, code: "http_502", message: "HTTP 502", issues: [] });
    expect(error.field).toBeUndefined();
    expect(error.retriable).toBe(true);
    expect(error.unavailable).toBe(true);
    const worded = EdgeError.fromAnswer(502, "<html>Bad gateway</html>", undefined, (e) => (e.fromBody ? e.message : e.text));
    expect(worded.message).toBe("<html>Bad gateway</html>");
  });

  it("tells what a retry may help: no answer, 408, 429 and 5xx", () => {
    const retriable = (status: number) => new EdgeError({ status, code: "x", message: "x" }).retriable;
    expect([0, 408, 429, 500, 503].map(retriable)).toEqual([true, true, true, true, true]);
    expect([400, 401, 403, 404, 409, 413].map(retriable)).toEqual([false, false, false, false, false, false]);
    expect(EdgeError.unreachable("down")).toMatchObject({ status: 0, code: "unreachable", retriable: true });
  });

  it("carries Retry-After in milliseconds, as seconds or an HTTP date", () => {
    const body = JSON.stringify({ error: { code: "rate_limited", message: "slow down", issues: [] } });
    expect(EdgeError.fromAnswer(429, body, headers({ "retry-after": "3" })).retryAfterMs).toBe(3000);
    expect(EdgeError.fromAnswer(429, body, headers({})).retryAfterMs).toBeUndefined();
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(retryAfterMs("Thu, 01 Jan 2026 00:00:05 GMT", now)).toBe(5000);
    expect(retryAfterMs("Wed, 31 Dec 2025 23:59:00 GMT", now)).toBe(0);
    expect(retryAfterMs("soon", now)).toBeUndefined();
  });
});
