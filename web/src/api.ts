/**
 * Calls to the edge's HTTP API with the session's access token. A 401 refreshes the token once
 * and retries; if that fails too the session ends and the login screen shows (seed 003). A 503,
 * or no answer at all, becomes an ApiError (shared/edge-error.ts) the views show as a friendly error with a retry
 * button (seed 003).
 */
import { EdgeError } from "../../shared/edge-error.ts";
import { AuthRequired, type Session } from "./session.ts";

/** Every error answer of the edge, and no answer at all (status 0): the one class all clients share. */
export { EdgeError as ApiError };

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
      throw new EdgeError({
        status: 0,
        code: "network",
        message: "Cannot reach the edge. It may be restarting or your connection may be down.",
        cause: error,
      });
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
    if (!res.ok) throw EdgeError.fromAnswer(res.status, text, res.headers);
    if (asText) return text as T;
    try {
      return (text ? JSON.parse(text) : {}) as T;
    } catch {
      return { raw: text.slice(0, 200) } as T;
    }
  }

  return {
    get: (path, options) => request(path, options),
    send: (method, path, body, options) => request(path, { ...options, method, body }),
    text: (path, options) => request<string>(path, options, true),
  };
}

/** A path segment, escaped. */
export const seg = (value: string) => encodeURIComponent(value);
