/** The edge's HTTP API as the CLI calls it: JSON in and out, error answers become EdgeError. */
import { CliError, EdgeError, EXIT, UsageError } from "./errors.ts";
import type { Settings } from "./settings.ts";

export type Query = Record<string, string | number | boolean | undefined | string[]>;

export class EdgeClient {
  readonly url: string;
  readonly token: string | undefined;
  private readonly tokenSource: string;

  constructor(settings: Settings) {
    this.url = settings.url;
    this.token = settings.token;
    this.tokenSource = settings.source.token;
  }

  requireToken(): string {
    if (!this.token)
      throw new UsageError("this needs a token: EDGEMESH_TOKEN (the admin token or an access token), --token, or the config file");
    return this.token;
  }

  async request<T>(method: string, path: string, options: { body?: unknown; query?: Query; token?: string | null } = {}): Promise<T> {
    const url = new URL(path, `${this.url}/`);
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value === undefined || value === false) continue;
      for (const v of Array.isArray(value) ? value : [value]) url.searchParams.append(key, String(v));
    }
    const token = options.token === null ? undefined : (options.token ?? this.requireToken());
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: {
          accept: "application/json",
          ...(token && { authorization: `Bearer ${token}` }),
          ...(options.body !== undefined && { "content-type": "application/json" }),
        },
        ...(options.body !== undefined && { body: JSON.stringify(options.body) }),
        signal: AbortSignal.timeout(60_000),
      });
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      const why = cause?.code ?? cause?.message ?? (error as Error).message;
      throw new CliError(`cannot reach the edge at ${this.url} (${why})`, EXIT.failure, { cause: error });
    }
    const text = await res.text();
    if (!res.ok) {
      const hint = res.status === 401 ? ` — the token came from ${this.tokenSource}` : "";
      throw EdgeError.fromAnswer(res.status, text, res.headers, (e) => {
        const issues = e.issues.length ? ` (${e.issues.map((i) => `${i.path}: ${i.message}`).join("; ")})` : "";
        return `${e.status} ${e.code}: ${e.fromBody ? e.message : e.text.slice(0, 200)}${issues}${hint}`;
      });
    }
    let body: unknown = null;
    if (text) {
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
    }
    return body as T;
  }

  get<T>(path: string, query?: Query) {
    return this.request<T>("GET", path, { query });
  }

  post<T>(path: string, body?: unknown) {
    return this.request<T>("POST", path, { body: body ?? {} });
  }
}
