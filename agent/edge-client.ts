/**
 * The agent's calls to the edge (functions/routes/agent.ts), with its own token. What the edge
 * answers is checked against its schema (shared/schemas/api/agent.ts) before the agent acts on it;
 * every error, answered or not, is an EdgeError that says whether a retry may help.
 */
import { promisify } from "node:util";
import { gzip } from "node:zlib";

import type { z } from "zod";
import { EdgeError } from "../shared/edge-error.ts";
import { AgentBatchAnswer, AgentCommandsAnswer, type AgentResult, type DesiredState } from "../shared/schemas/api/agent.ts";
import type { DeliveredCommand } from "../shared/schemas/api/twin.ts";

const gzipAsync = promisify(gzip);

export type { AgentResult };
/** A command as the edge delivers it (shared/schemas/api/twin.ts). */
export type EdgeCommand = DeliveredCommand;
/** The device's desired state as the edge answers it. */
export type EdgeDesired = DesiredState;
/** Every error answer of the edge, and no answer at all (shared/edge-error.ts). */
export { EdgeError };

/** What the edge answered, checked against its schema: an answer of another shape is the edge failing. */
function answerOf<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw new EdgeError({
    status: 502,
    code: "bad_answer",
    message: `the edge's answer to ${what} is not what it should be (${issue?.path.join(".") || "body"}: ${issue?.message})`,
  });
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
      throw EdgeError.unreachable(`edge unreachable: ${(error as Error).cause ?? (error as Error).message}`, error);
    }
    const text = await response.text().catch(() => "");
    if (response.ok) {
      try {
        return text ? JSON.parse(text) : null;
      } catch {
        throw new EdgeError({ status: 502, code: "bad_answer", message: `the edge's answer is not JSON: ${text.slice(0, 100)}` });
      }
    }
    throw EdgeError.fromAnswer(response.status, text, response.headers, () => `edge answered ${response.status}: ${text.slice(0, 300)}`);
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
    const answer = answerOf(AgentBatchAnswer, await this.#call("/v1/agent/messages", { method: "POST", headers, body }), "a batch");
    if (answer.results.length !== messages.length)
      throw new EdgeError({ status: 502, code: "bad_answer", message: "the edge's answer does not name every message" });
    return answer.results;
  }

  /** The device's due commands and its desired state; waits up to `waitS` for either to change. */
  async commands(device: string, waitS: number, signal?: AbortSignal): Promise<{ commands: EdgeCommand[]; desired: EdgeDesired }> {
    const answer = await this.#call(`/v1/agent/devices/${device}/commands?wait_s=${waitS}`, {
      timeoutMs: (waitS + 15) * 1000,
      signal,
    });
    return answerOf(AgentCommandsAnswer, answer, `the commands of ${device}`);
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
    if (!Array.isArray(answer?.devices))
      throw new EdgeError({ status: 502, code: "bad_answer", message: "the edge's answer has no device list" });
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
