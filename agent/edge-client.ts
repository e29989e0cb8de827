/** The agent's calls to the edge (functions/routes/agent.ts), with its own token. */
import { promisify } from "node:util";
import { gzip } from "node:zlib";

const gzipAsync = promisify(gzip);

export type AgentResult =
  | { status: "stored"; id: string }
  | { status: "rejected"; id?: string; code: string; issues: { path: string; message: string }[] }
  | { status: "retry"; code: string; message: string; retry_after_s?: number };

export interface EdgeCommand {
  id: string;
  command: string;
  parameters: Record<string, unknown>;
  expires_at: string;
  attempts: number;
  correlation_id?: string;
}

export interface EdgeDesired {
  version: number;
  state: Record<string, unknown>;
}

/** An answer that says "try again later": the edge is down, overloaded or rate limiting. */
export class EdgeUnavailable extends Error {
  override name = "EdgeUnavailable";
  readonly retryAfterMs: number | undefined;
  constructor(message: string, retryAfterMs?: number) {
    super(message);
    this.retryAfterMs = retryAfterMs;
  }
}

/** An answer that retrying will not change (bad credential, bad request). */
export class EdgeRefused extends Error {
  override name = "EdgeRefused";
  readonly status: number;
  /** The edge's error code (`invalid_payload`, `batch_too_large`, …), when its answer had one. */
  readonly code: string | undefined;
  constructor(message: string, status: number, code?: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function errorCode(text: string): string | undefined {
  try {
    const code = (JSON.parse(text) as { error?: { code?: unknown } }).error?.code;
    return typeof code === "string" ? code : undefined;
  } catch {
    return undefined;
  }
}

export class EdgeClient {
  readonly url: string;
  readonly token: string;
  readonly options: { gzip: boolean; timeoutMs: number };

  constructor(url: string, token: string, options: { gzip: boolean; timeoutMs: number }) {
    this.url = url;
    this.token = token;
    this.options = options;
  }

  get agentId(): string {
    return this.token.slice(0, this.token.indexOf("."));
  }

  async #call(path: string, init: RequestInit & { timeoutMs?: number } = {}): Promise<unknown> {
    let response: Response;
    try {
      response = await fetch(new URL(path, this.url), {
        ...init,
        headers: { authorization: `Bearer ${this.token}`, ...(init.headers as Record<string, string>) },
        signal: AbortSignal.any([AbortSignal.timeout(init.timeoutMs ?? this.options.timeoutMs), ...(init.signal ? [init.signal] : [])]),
      });
    } catch (error) {
      throw new EdgeUnavailable(`edge unreachable: ${(error as Error).cause ?? (error as Error).message}`);
    }
    const text = await response.text().catch(() => "");
    if (response.ok) return text ? JSON.parse(text) : null;
    const retryAfter = Number(response.headers.get("retry-after"));
    if (response.status === 429 || response.status >= 500 || response.status === 408)
      throw new EdgeUnavailable(`edge answered ${response.status}: ${text.slice(0, 300)}`, retryAfter > 0 ? retryAfter * 1000 : undefined);
    throw new EdgeRefused(`edge answered ${response.status}: ${text.slice(0, 300)}`, response.status, errorCode(text));
  }

  /** Posts a batch; the answer has one result per message, in order. */
  async send(messages: unknown[]): Promise<AgentResult[]> {
    const json = JSON.stringify({ messages });
    const headers: Record<string, string> = { "content-type": "application/json" };
    let body: string | Uint8Array = json;
    if (this.options.gzip) {
      body = new Uint8Array(await gzipAsync(json));
      headers["content-encoding"] = "gzip";
    }
    const answer = (await this.#call("/v1/agent/messages", { method: "POST", headers, body })) as { results: AgentResult[] };
    if (!Array.isArray(answer?.results) || answer.results.length !== messages.length)
      throw new EdgeUnavailable("the edge's answer does not name every message");
    return answer.results;
  }

  /** The device's due commands and its desired state; waits up to `waitS` for either to change. */
  async commands(device: string, waitS: number, signal?: AbortSignal): Promise<{ commands: EdgeCommand[]; desired: EdgeDesired }> {
    return (await this.#call(`/v1/agent/devices/${device}/commands?wait_s=${waitS}`, {
      timeoutMs: (waitS + 15) * 1000,
      signal,
    })) as { commands: EdgeCommand[]; desired: EdgeDesired };
  }

  async commandResult(device: string, id: string, outcome: { status: "succeeded" | "failed"; result?: unknown; error?: string }) {
    await this.#call(`/v1/agent/devices/${device}/commands/${encodeURIComponent(id)}/result`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(outcome),
    });
  }

  /** Auto-provisioning: registers a device this agent bridges (idempotent; 409 when another owns the id). */
  async provision(device: { id: string; type: string; name?: string; ecosystem?: string }): Promise<{ created: boolean }> {
    return (await this.#call("/v1/agent/devices", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(device),
    })) as { created: boolean };
  }

  /** A command from the LAN (Home Assistant) for a device this agent bridges; queued at its twin. */
  async issueCommand(device: string, command: { command: string; parameters: Record<string, unknown> }): Promise<{ command: EdgeCommand }> {
    return (await this.#call(`/v1/agent/devices/${device}/commands`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(command),
    })) as { command: EdgeCommand };
  }

  /** Edge-native devices an admin shows in Home Assistant through this agent, with their readings. */
  async homeAssistantDevices(): Promise<
    { id: string; name?: string; type: string; room?: string; availability: string; readings: Record<string, unknown> }[]
  > {
    const answer = (await this.#call("/v1/agent/homeassistant/devices")) as { devices: unknown };
    if (!Array.isArray(answer?.devices)) throw new EdgeUnavailable("the edge's answer has no device list");
    return answer.devices;
  }

  async presence(device: string, status: "online" | "offline", reason?: "connect" | "disconnect" | "last_will") {
    await this.#call(`/v1/agent/devices/${device}/presence`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ status, reason }),
    });
  }
}

/** Exponential backoff with full jitter, capped. */
export function backoffMs(attempt: number, initialMs: number, maxMs: number): number {
  return Math.round(Math.random() * Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 20)));
}
