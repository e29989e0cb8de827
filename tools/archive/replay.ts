/**
 * `replay`: a range's messages back through the edge, each to its own exchange's publish endpoint
 * (`POST /v1/exchanges/<exchange>/publish`), with its id, routing key, timestamp and payload.
 *
 * Idempotent: the edge remembers each sender's message ids for DEDUPE_WINDOW_HOURS, so replaying
 * the same range again within that window is answered as duplicates and routed nowhere. The
 * edge makes the replaying service the message's `source` (it rejects any other), so the original
 * source and edge time travel in metadata, with a mark that tells the archive not to store the
 * message again. docs/archive.md weighs what that means.
 */
import { REPLAY_MARK, REPLAY_MARK_VALUE } from "../../shared/archive.ts";
import type { ArchiveKind } from "../../shared/schemas/archive.ts";
import type { Envelope } from "../../shared/schemas/message.ts";
import { CliError, EXIT } from "./errors.ts";
import type { CommandResult } from "./output.ts";
import type { Progress } from "./progress.ts";
import { describeRange, type TimeRange } from "./range.ts";
import { plan, type ReadTally, readHours } from "./select.ts";
import type { ArchiveStore } from "./store.ts";

export interface ReplayOptions {
  kinds: ArchiveKind[];
  range: TimeRange;
  /** The edge's base URL. */
  url: string;
  /** A service token with publish permissions for the replayed exchanges and routing keys. */
  token: string;
  batchSize: number;
  progress: Progress;
  /** Waits between attempts, in ms (tests shorten them). */
  backoffMs?: (attempt: number) => number;
}

/** What the edge answered about one message. */
interface Rejection {
  id: string;
  code: string;
  message: string;
}

interface BatchOutcome {
  accepted: number;
  duplicates: number;
  rejected: Rejection[];
  /** Set when the batch could not be delivered at all (after retries). */
  failed?: string;
}

const MAX_BODY_BYTES = 512 * 1024;
const ATTEMPTS = 6;
const encoder = new TextEncoder();

/**
 * The message as a sender posts it: what the edge fills in itself (source, edge time, schema
 * version; the exchange comes from the URL) is left out, and the original source and edge time
 * go into metadata.
 */
export function toInbound(message: Envelope): Record<string, unknown> {
  const { source, received_at, exchange: _exchange, schema_version: _version, metadata, ...rest } = message;
  return {
    ...rest,
    metadata: { ...metadata, [REPLAY_MARK]: REPLAY_MARK_VALUE, original_source: source, original_received_at: received_at },
  };
}

/** Splits a list of messages into request bodies within the batch size and the edge's body limit. */
function* batches(messages: Envelope[], size: number): Generator<{ ids: string[]; body: string }> {
  let ids: string[] = [];
  let lines: string[] = [];
  let bytes = 0;
  for (const message of messages) {
    const line = `${JSON.stringify(toInbound(message))}\n`;
    const length = encoder.encode(line).byteLength;
    if (lines.length > 0 && (lines.length >= size || bytes + length > MAX_BODY_BYTES)) {
      yield { ids, body: lines.join("") };
      ids = [];
      lines = [];
      bytes = 0;
    }
    ids.push(message.id);
    lines.push(line);
    bytes += length;
  }
  if (lines.length > 0) yield { ids, body: lines.join("") };
}

interface EdgeAnswer {
  accepted?: number;
  duplicates?: number;
  rejected?: { index: number; id?: string; code: string; issues?: { path: string; message: string }[] }[];
  error?: { code: string; message: string };
}

function rejectionsOf(answer: EdgeAnswer, ids: string[]): Rejection[] {
  return (answer.rejected ?? []).map((r) => ({
    id: r.id ?? ids[r.index] ?? `#${r.index}`,
    code: r.code,
    message: (r.issues ?? []).map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join("; "),
  }));
}

const defaultBackoff = (attempt: number) => Math.min(1000 * 2 ** (attempt - 1), 16_000);

async function postBatch(options: ReplayOptions, exchange: string, batch: { ids: string[]; body: string }): Promise<BatchOutcome> {
  const url = `${options.url.replace(/\/+$/, "")}/v1/exchanges/${encodeURIComponent(exchange)}/publish`;
  const backoff = options.backoffMs ?? defaultBackoff;
  let last = "";
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    let res: Response;
    try {
      res = await fetch(url, {
        method: "POST",
        headers: { authorization: `Bearer ${options.token}`, "content-type": "application/x-ndjson" },
        body: batch.body,
        signal: AbortSignal.timeout(30_000),
      });
    } catch (error) {
      last = `${url}: ${error instanceof Error ? error.message : String(error)}`;
      await new Promise((r) => setTimeout(r, backoff(attempt)));
      continue;
    }
    const answer = (await res.json().catch(() => ({}))) as EdgeAnswer;
    if (res.status === 202) {
      return { accepted: answer.accepted ?? 0, duplicates: answer.duplicates ?? 0, rejected: rejectionsOf(answer, batch.ids) };
    }
    const code = answer.error?.code ?? `http_${res.status}`;
    if (res.status === 401 || code === "too_many_failed_attempts") {
      // Every other batch would fail the same way: stop here.
      throw new CliError(`the edge refused the token (${res.status} ${code}): check --token / EDGEMESH_TOKEN`);
    }
    if (res.status === 429 || res.status >= 500) {
      last = `${res.status} ${code}: ${answer.error?.message ?? ""}`.trim();
      const retryAfter = Number(res.headers.get("retry-after"));
      await new Promise((r) => setTimeout(r, retryAfter > 0 ? Math.min(retryAfter, 60) * 1000 : backoff(attempt)));
      continue;
    }
    // The edge rejected the whole request: every message when it says which, else the batch.
    if (answer.rejected) return { accepted: 0, duplicates: 0, rejected: rejectionsOf(answer, batch.ids) };
    const message = answer.error?.message ?? `HTTP ${res.status}`;
    return { accepted: 0, duplicates: 0, rejected: batch.ids.map((id) => ({ id, code, message })) };
  }
  return {
    accepted: 0,
    duplicates: 0,
    rejected: [],
    failed: `${batch.ids.length} messages not delivered after ${ATTEMPTS} attempts: ${last}`,
  };
}

export async function replay(store: ArchiveStore, options: ReplayOptions): Promise<CommandResult> {
  const planned = await plan(store, options.kinds, options.range);
  const tally: ReadTally = { objects: 0, duplicates: 0, problems: [...planned.problems] };
  const totals = { messages: 0, accepted: 0, duplicates: 0, rejected: 0, failed: 0 };
  const byCode: Record<string, number> = {};
  const rejections: Rejection[] = [];
  const failures: string[] = [];
  const perExchange: Record<string, number> = {};

  options.progress.start(planned.messages);
  try {
    for await (const hour of readHours(store, planned, tally)) {
      const groups = Map.groupBy(hour.messages, (m) => m.exchange);
      for (const [exchange, messages] of groups) {
        for (const batch of batches(messages, options.batchSize)) {
          const outcome = await postBatch(options, exchange, batch);
          totals.messages += batch.ids.length;
          perExchange[exchange] = (perExchange[exchange] ?? 0) + batch.ids.length;
          totals.accepted += outcome.accepted;
          totals.duplicates += outcome.duplicates;
          totals.rejected += outcome.rejected.length;
          for (const r of outcome.rejected) byCode[r.code] = (byCode[r.code] ?? 0) + 1;
          if (rejections.length < 100) rejections.push(...outcome.rejected.slice(0, 100 - rejections.length));
          if (outcome.failed) {
            totals.failed += batch.ids.length;
            failures.push(`${exchange}: ${outcome.failed}`);
          }
          options.progress.increment(batch.ids.length);
        }
      }
    }
  } finally {
    options.progress.stop();
  }

  const summary = {
    command: "replay",
    bucket: store.bucket,
    url: options.url,
    range: describeRange(options.range),
    kinds: options.kinds,
    objects: tally.objects,
    ...totals,
    rejected_by_code: byCode,
    per_exchange: perExchange,
    duplicates_in_archive: tally.duplicates,
    rejections,
    failures,
    problems: tally.problems,
  };
  const lines = [
    `replayed ${totals.messages} messages from ${tally.objects} objects to ${options.url}: ${totals.accepted} accepted, ` +
      `${totals.duplicates} duplicates (already replayed), ${totals.rejected} rejected, ${totals.failed} not delivered`,
  ];
  for (const [code, n] of Object.entries(byCode)) lines.push(`rejected ${code}: ${n}`);
  for (const r of rejections.slice(0, 10)) lines.push(`  ${r.id}: ${r.code}${r.message ? `: ${r.message}` : ""}`);
  for (const f of failures) lines.push(`not delivered: ${f}`);
  for (const p of tally.problems) lines.push(`problem: ${p.key}: ${p.error}`);
  const clean = totals.rejected === 0 && totals.failed === 0 && tally.problems.length === 0;
  return { summary, text: lines.join("\n"), exitCode: clean ? EXIT.ok : EXIT.failures };
}
