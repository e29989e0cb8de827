/**
 * The one error every client of the edge (the agent, the CLI, the dashboard, the simulator)
 * turns an error answer into: the edge's error body (shared/schemas/api/error.ts) parsed once,
 * with the HTTP status, the machine-readable code, the field at fault and whether trying again
 * later may help. Status 0 means no answer at all (the edge could not be reached).
 */

import type { Issue } from "./schemas/api/common.ts";
import { ErrorBody } from "./schemas/api/error.ts";

export interface EdgeErrorInit {
  status: number;
  code: string;
  message: string;
  issues?: Issue[];
  /** From Retry-After, when the edge sent one. */
  retryAfterMs?: number;
  /** The answer's body as it came (parsed JSON, or text). */
  body?: unknown;
  cause?: unknown;
}

export class EdgeError extends Error {
  override name = "EdgeError";
  readonly status: number;
  readonly code: string;
  readonly issues: Issue[];
  readonly retryAfterMs: number | undefined;
  readonly body: unknown;

  constructor(init: EdgeErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.status = init.status;
    this.code = init.code;
    this.issues = init.issues ?? [];
    this.retryAfterMs = init.retryAfterMs;
    this.body = init.body;
  }

  /** The first field at fault (`payload.temperature`), when the edge named one. */
  get field(): string | undefined {
    return this.issues.find((i) => i.path !== "")?.path;
  }

  /** Trying again later may help: no answer, a timeout, rate limiting or the edge failing. */
  get retriable(): boolean {
    return this.status === 0 || this.status === 408 || this.status === 429 || this.status >= 500;
  }

  /** The edge is down or not ready (a dashboard shows a retry button). */
  get unavailable(): boolean {
    return this.status === 0 || this.status === 502 || this.status === 503 || this.status === 504;
  }

  /**
   * The error an answer's status and text stand for: the error body's code, message and issues
   * when it has one, else `http_<status>` and the start of the text.
   */
  static fromAnswer(
    status: number,
    text: string,
    headers?: { get(name: string): string | null },
    messageOf?: (e: ErrorFields) => string,
  ): EdgeError {
    let body: unknown = text;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      // Not JSON (a proxy's error page): the text is the message.
    }
    const parsed = ErrorBody.safeParse(body);
    const fields: ErrorFields = parsed.success
      ? { status, ...parsed.data.error, text, fromBody: true }
      : { status, code: `http_${status}`, message: `HTTP ${status}`, issues: [], text, fromBody: false };
    return new EdgeError({
      status,
      code: fields.code,
      issues: fields.issues,
      message: messageOf ? messageOf(fields) : fields.message,
      retryAfterMs: positive(retryAfterMs(headers?.get("retry-after") ?? null)),
      body,
    });
  }

  /** No answer: the edge could not be reached, or did not answer in time. */
  static unreachable(message: string, cause?: unknown): EdgeError {
    return new EdgeError({ status: 0, code: "unreachable", message, cause });
  }
}

const positive = (ms: number | undefined) => (ms !== undefined && ms > 0 ? ms : undefined);

/** What an error answer said, for a client that words its own message. */
export interface ErrorFields {
  status: number;
  code: string;
  message: string;
  issues: Issue[];
  /** The answer's text as it came. */
  text: string;
  /** Whether the answer had the edge's error body (else code and message are made up from the status). */
  fromBody: boolean;
}

/** Retry-After in milliseconds: delta-seconds or an HTTP date (0 when that date is past). */
export function retryAfterMs(header: string | null, now = Date.now()): number | undefined {
  if (!header) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
