/**
 * Who is signed in (docs/auth.md). The login screen takes the admin token or a login token
 * (a refresh token an admin issued) and exchanges it at POST /v1/auth/token. The refresh token is
 * kept in local storage, so a reload stays signed in; the access token only in memory. The
 * access token is refreshed a minute before it expires, when an API call answers 401 because it
 * expired, and when a hub closes a socket with 4001.
 */
import type { AccessAnswer } from "../../shared/schemas/api/auth.ts";
import type { Role } from "./types.ts";

export const REFRESH_KEY = "edgemesh.refresh_token";
/** Refresh this long before the access token expires. */
const EARLY_MS = 60_000;

export interface Identity {
  sub: string;
  role: Role;
}

/** "Sign in again": the refresh token is gone, expired or refused. */
export class AuthRequired extends Error {
  readonly authRequired = true;
  override name = "AuthRequired";
}

/** The token endpoint answered something other than a token (not a credential problem). */
export class LoginError extends Error {
  override name = "LoginError";
  readonly status: number;
  constructor(message: string, status: number) {
    super(message);
    this.status = status;
  }
}

export interface SessionOptions {
  fetch?: typeof fetch;
  storage?: Pick<Storage, "getItem" | "setItem" | "removeItem">;
  now?: () => number;
  /** Where the API lives; the page's own origin by default. */
  base?: string;
}

/** A JWT is three base64url parts; the admin token is anything else. */
export function looksLikeJwt(token: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token);
}

export class Session {
  #fetch: typeof fetch;
  #storage: SessionOptions["storage"];
  #now: () => number;
  #base: string;
  #access: { token: string; expiresAt: number } | undefined;
  #identity: Identity | undefined;
  #refreshing: Promise<string> | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #listeners = new Set<(identity: Identity | undefined, reason?: string) => void>();

  constructor(options: SessionOptions = {}) {
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
    this.#storage = options.storage ?? (typeof localStorage === "undefined" ? undefined : localStorage);
    this.#now = options.now ?? Date.now;
    this.#base = options.base ?? "";
  }

  get identity(): Identity | undefined {
    return this.#identity;
  }

  /** Whether a refresh token is stored (the dashboard then tries it before showing the login screen). */
  get hasRefreshToken(): boolean {
    return Boolean(this.#storage?.getItem(REFRESH_KEY));
  }

  onChange(listener: (identity: Identity | undefined, reason?: string) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Exchanges what the person pasted: a login token (a JWT) or the admin token. */
  async login(secret: string): Promise<Identity> {
    const trimmed = secret.trim();
    if (!trimmed) throw new LoginError("Paste a token first.", 400);
    const body: Record<string, string> = looksLikeJwt(trimmed)
      ? { grant_type: "refresh_token", refresh_token: trimmed }
      : { grant_type: "admin_token", admin_token: trimmed };
    const answer = await this.#token(body, true);
    const refresh = answer.refresh_token ?? trimmed;
    this.#storage?.setItem(REFRESH_KEY, refresh);
    this.#accept(answer);
    return this.#identity as Identity;
  }

  /** A valid access token, refreshing first when it is missing or about to expire. */
  async accessToken(): Promise<string> {
    if (this.#access && this.#access.expiresAt - this.#now() > EARLY_MS / 2) return this.#access.token;
    return this.refresh();
  }

  /** A new access token from the stored refresh token; one request however many callers. */
  refresh(): Promise<string> {
    this.#refreshing ??= (async () => {
      try {
        const refresh = this.#storage?.getItem(REFRESH_KEY);
        if (!refresh) throw new AuthRequired("not signed in");
        const answer = await this.#token({ grant_type: "refresh_token", refresh_token: refresh }, false);
        this.#accept(answer);
        return answer.access_token;
      } finally {
        this.#refreshing = undefined;
      }
    })();
    return this.#refreshing;
  }

  /** Forgets everything; listeners show the login screen. */
  logout(reason?: string): void {
    this.#storage?.removeItem(REFRESH_KEY);
    this.#access = undefined;
    const had = this.#identity !== undefined;
    this.#identity = undefined;
    clearTimeout(this.#timer);
    if (had || reason) for (const listener of this.#listeners) listener(undefined, reason);
  }

  async #token(body: Record<string, string>, loggingIn: boolean): Promise<AccessAnswer> {
    let res: Response;
    try {
      res = await this.#fetch(`${this.#base}/v1/auth/token`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    } catch {
      throw new LoginError("Cannot reach the edge. Check that it is running, then try again.", 0);
    }
    const json = (await res.json().catch(() => ({}))) as Partial<AccessAnswer> & { error?: { code?: string; message?: string } };
    if (res.ok && typeof json.access_token === "string") return json as AccessAnswer;
    if (res.status === 401 || res.status === 400) {
      if (!loggingIn) {
        this.logout("Your session has expired. Please sign in again.");
        throw new AuthRequired(json.error?.message ?? "the refresh token was refused");
      }
      throw new LoginError("That token was not accepted. Check it and try again.", res.status);
    }
    if (res.status === 429) throw new LoginError("Too many failed attempts from this address. Wait a minute, then try again.", 429);
    if (res.status === 503) throw new LoginError(`The edge is not ready: ${json.error?.message ?? "service unavailable"}.`, 503);
    throw new LoginError(`Signing in failed (HTTP ${res.status}${json.error?.message ? `: ${json.error.message}` : ""}).`, res.status);
  }

  #accept(answer: AccessAnswer): void {
    const expiresAt = this.#now() + answer.expires_in * 1000;
    this.#access = { token: answer.access_token, expiresAt };
    const changed = this.#identity?.sub !== answer.sub || this.#identity?.role !== answer.role;
    this.#identity = { sub: answer.sub, role: answer.role };
    clearTimeout(this.#timer);
    // Refresh ahead of expiry, so sockets and calls never carry an expired token.
    const delay = Math.max(5_000, expiresAt - this.#now() - EARLY_MS);
    this.#timer = setTimeout(() => void this.refresh().catch(() => {}), delay);
    if (changed) for (const listener of this.#listeners) listener(this.#identity);
  }
}

export function roleAllows(role: Role | undefined, needed: Role): boolean {
  const rank: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };
  return role !== undefined && rank[role] >= rank[needed];
}
