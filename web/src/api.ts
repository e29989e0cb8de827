/**
 * Calls to the edge's HTTP API with the session's access token. A 401 refreshes the token once
 * and retries; if that fails too the session ends and the login screen shows (seed 003). A 503,
 * or no answer at all, becomes an ApiError the views show as a friendly error with a retry
 * button (seed 003).
 */
import { AuthRequired, type Session } from "./session.ts";

export class ApiError extends Error {
  override name = "ApiError";
  readonly status: number;
  readonly code: string;
  readonly issues: { path: string; message: string }[];
  constructor(status: number, code: string, message: string, issues: { path: string; message: string }[] = []) {
    super(message);
    this.status = status;
    this.code = code;
    this.issues = issues;
  }
  /** The edge is down or not ready: worth a retry button. */
  get unavailable(): boolean {
    return this.status === 0 || this.status === 502 || this.status === 503 || this.status === 504;
  }
}

export interface RequestOptions {
  method?: string;
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

export interface Api {
  get<T>(path: string, options?: RequestOptions): Promise<T>;
  send<T>(method: string, path: string, body?: unknown, options?: RequestOptions): Promise<T>;
  /** A GET whose answer is text (GET /metrics); errors are ApiErrors as for JSON. */
  text(path: string, options?: RequestOptions): Promise<string>;
}

export function createApi(session: Session, fetchImpl: typeof fetch = (i, init) => fetch(i, init), base = ""): Api {
  async function once(path: string, token: string, options: RequestOptions): Promise<Response> {
    const headers: Record<string, string> = { authorization: `Bearer ${token}`, ...(options.headers ?? {}) };
    if (options.body !== undefined) headers["content-type"] = "application/json";
    try {
      return await fetchImpl(`${base}${path}`, {
        method: options.method ?? "GET",
        headers,
        body: options.body === undefined ? null : JSON.stringify(options.body),
        signal: options.signal ?? null,
      });
    } catch (error) {
      if ((error as Error).name === "AbortError") throw error;
      throw new ApiError(0, "network", "Cannot reach the edge. It may be restarting or your connection may be down.");
    }
  }

  async function request<T>(path: string, options: RequestOptions = {}, asText = false): Promise<T> {
    let res = await once(path, await session.accessToken(), options);
    if (res.status === 401) {
      // Expired (or the secret rotated): one refresh, one retry; a refused refresh ends the session.
      res = await once(path, await session.refresh(), options);
      if (res.status === 401) {
        session.logout("Your session is no longer valid. Please sign in again.");
        throw new AuthRequired("401 after a refresh");
      }
    }
    const text = await res.text();
    if (asText && res.ok) return text as T;
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : {};
    } catch {
      json = { raw: text.slice(0, 200) };
    }
    if (res.ok) return json as T;
    const error = (json as { error?: { code?: string; message?: string; issues?: { path: string; message: string }[] } }).error;
    throw new ApiError(res.status, error?.code ?? `http_${res.status}`, error?.message ?? `HTTP ${res.status}`, error?.issues ?? []);
  }

  return {
    get: (path, options) => request(path, options),
    send: (method, path, body, options) => request(path, { ...options, method, body }),
    text: (path, options) => request<string>(path, options, true),
  };
}

/** A path segment, escaped. */
export const seg = (value: string) => encodeURIComponent(value);
