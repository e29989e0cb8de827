/**
 * A closed-loop HTTP load generator: `concurrency` workers, each sending its next request as soon
 * as the previous answer is read, over keep-alive connections (node:http with a keep-alive
 * Agent; cheaper per request than fetch, which matters when the load generator shares two cores
 * with the edge). Latency is measured per request from just before the request is written to
 * when the whole answer has been read, so it includes queueing inside the server.
 */
import { Agent, request as httpRequest } from "node:http";
import { countInto } from "./stats.ts";

export interface LoadRequest {
  method?: string;
  path: string;
  headers: Record<string, string>;
  body: string;
  /** How many messages the body carries, for messages/s. */
  messages: number;
}

export interface LoadResponse {
  status: number;
  body: string;
}

/** What the caller makes of an answer: how many messages it accepted, or why it is an error. */
export type Judgement = { ok: true; accepted: number; duplicates?: number; rejected?: number } | { ok: false; error: string };

export interface LoadOptions {
  /** Base URL, http://127.0.0.1:<port>. */
  url: string;
  concurrency: number;
  /** Stop starting new requests after this long… */
  durationMs: number;
  /** …or after this many requests, whichever comes first. */
  maxRequests?: number;
  /** Per-request timeout; a timed-out request counts as an error. */
  timeoutMs?: number;
  /** Builds the next request (called outside the timed section). */
  next: (seq: number) => LoadRequest;
  judge: (response: LoadResponse, request: LoadRequest) => Judgement;
}

export interface LoadResult {
  requests: number;
  elapsedMs: number;
  /** Latency of every completed request, in milliseconds, in completion order. */
  latenciesMs: Float64Array;
  messagesSent: number;
  messagesAccepted: number;
  duplicates: number;
  rejected: number;
  /** HTTP statuses by count ("0" never appears: transport failures are in `errors`). */
  statuses: Map<number, number>;
  /** Requests that failed: transport errors, timeouts and answers the judge refused, by reason. */
  errors: Map<string, number>;
  errorCount: number;
}

function send(agent: Agent, base: URL, req: LoadRequest, timeoutMs: number): Promise<LoadResponse> {
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(
      {
        host: base.hostname,
        port: base.port,
        method: req.method ?? "POST",
        path: req.path,
        agent,
        headers: { ...req.headers, "content-length": String(Buffer.byteLength(req.body)) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      },
    );
    outgoing.setTimeout(timeoutMs, () => outgoing.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    outgoing.on("error", reject);
    outgoing.end(req.body);
  });
}

/** Runs the load and returns raw counts and latencies; never throws for a failed request. */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const base = new URL(options.url);
  const timeoutMs = options.timeoutMs ?? 10_000;
  const maxRequests = options.maxRequests ?? Number.POSITIVE_INFINITY;
  const agent = new Agent({ keepAlive: true, maxSockets: options.concurrency, maxFreeSockets: options.concurrency });
  const latencies: number[] = [];
  const result: Omit<LoadResult, "latenciesMs" | "elapsedMs"> = {
    requests: 0,
    messagesSent: 0,
    messagesAccepted: 0,
    duplicates: 0,
    rejected: 0,
    statuses: new Map(),
    errors: new Map(),
    errorCount: 0,
  };
  let started = 0;
  const t0 = performance.now();
  const deadline = t0 + options.durationMs;

  const worker = async () => {
    while (started < maxRequests && performance.now() < deadline) {
      const seq = started++;
      const req = options.next(seq);
      const begin = performance.now();
      let error: string | undefined;
      try {
        const response = await send(agent, base, req, timeoutMs);
        latencies.push(performance.now() - begin);
        countInto(result.statuses, response.status);
        const verdict = options.judge(response, req);
        if (verdict.ok) {
          result.messagesAccepted += verdict.accepted;
          result.duplicates += verdict.duplicates ?? 0;
          result.rejected += verdict.rejected ?? 0;
        } else error = verdict.error;
      } catch (e) {
        error = (e as Error).message || String(e);
      }
      result.requests++;
      result.messagesSent += req.messages;
      if (error !== undefined) {
        result.errorCount++;
        countInto(result.errors, error.slice(0, 160));
      }
    }
  };

  try {
    await Promise.all(Array.from({ length: options.concurrency }, worker));
  } finally {
    agent.destroy();
  }
  return { ...result, latenciesMs: Float64Array.from(latencies), elapsedMs: performance.now() - t0 };
}
