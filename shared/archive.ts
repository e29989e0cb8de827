/**
 * The archive's format, shared by its writer (the archive consumer, inside the Worker) and its
 * readers (tools/archive, in Node): which archive a message belongs to, the key layout, the
 * compressed NDJSON objects and the per-hour manifest. Web-standard APIs only, so that both
 * runtimes run the very same code and a test fixture written in Node is what R2 would hold.
 *
 *   archive/<kind>/<yyyy>/<mm>/<dd>/<hh>/<sha256 of the NDJSON>.ndjson.gz
 *   manifest/<kind>/<yyyy>/<mm>/<dd>/<hh>.json
 */
import { sha256Hex } from "./ids.ts";
import { ArchiveHour, type ArchiveKind, type HourManifest, type ManifestEntry } from "./schemas/archive.ts";
import type { Envelope, MessageType } from "./schemas/message.ts";

export const DATA_PREFIX = "archive/";
export const MANIFEST_PREFIX = "manifest/";

/**
 * Metadata a replay from the archive puts on each message (tools/archive replay). The archive
 * already holds such a message, so the archive consumer does not store it again.
 */
export const REPLAY_MARK = "replayed_from";
export const REPLAY_MARK_VALUE = "archive";

const READINGS: ReadonlySet<MessageType> = new Set(["telemetry", "metric"]);

/**
 * Both archive queues are bound to `#` (seed 001), so each sees every archived message; each
 * keeps only its own kind. Readings go to `metrics`, everything else to `events`, so that no
 * message type is dropped by both.
 */
export function kindOf(type: MessageType): ArchiveKind {
  return READINGS.has(type) ? "metrics" : "events";
}

export function isArchiveReplay(message: Envelope): boolean {
  return message.metadata[REPLAY_MARK] === REPLAY_MARK_VALUE;
}

/** The UTC hour (`YYYY-MM-DDTHH`) of a timestamp: the partition an archived message goes to. */
export function hourOf(timestamp: string | number): string {
  return new Date(typeof timestamp === "number" ? timestamp : Date.parse(timestamp)).toISOString().slice(0, 13);
}

/** `2026-11-23T14` → `2026/11/23/14`. */
function hourPath(hour: string): string {
  if (!ArchiveHour.safeParse(hour).success) throw new RangeError(`not an hour (YYYY-MM-DDTHH): ${hour}`);
  return `${hour.slice(0, 4)}/${hour.slice(5, 7)}/${hour.slice(8, 10)}/${hour.slice(11, 13)}`;
}

export function dataKey(kind: ArchiveKind, hour: string, sha256: string): string {
  return `${DATA_PREFIX}${kind}/${hourPath(hour)}/${sha256}.ndjson.gz`;
}

export function manifestKey(kind: ArchiveKind, hour: string): string {
  return `${MANIFEST_PREFIX}${kind}/${hourPath(hour)}.json`;
}

/** The prefix under which one month's manifests are listed (`manifest/<kind>/<yyyy>/<mm>/`). */
export function manifestMonthPrefix(kind: ArchiveKind, hour: string): string {
  return `${MANIFEST_PREFIX}${kind}/${hour.slice(0, 4)}/${hour.slice(5, 7)}/`;
}

const MANIFEST_KEY = /^manifest\/(events|metrics)\/(\d{4})\/(\d{2})\/(\d{2})\/(\d{2})\.json$/;

/** The kind and hour a manifest key names, or undefined for any other key. */
export function parseManifestKey(key: string): { kind: ArchiveKind; hour: string } | undefined {
  const m = MANIFEST_KEY.exec(key);
  if (!m) return undefined;
  return { kind: m[1] as ArchiveKind, hour: `${m[2]}-${m[3]}-${m[4]}T${m[5]}` };
}

/** One envelope a line, each line ending in a newline. */
export function toNdjson(messages: readonly unknown[]): string {
  return messages.map((m) => `${JSON.stringify(m)}\n`).join("");
}

/** The non-empty lines of an NDJSON text, parsed; a line that is not JSON is reported by its number. */
export function parseNdjson(text: string): { line: number; value?: unknown; error?: string }[] {
  const out: { line: number; value?: unknown; error?: string }[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]?.trim();
    if (!line) continue;
    try {
      out.push({ line: i + 1, value: JSON.parse(line) });
    } catch (error) {
      out.push({ line: i + 1, error: String(error) });
    }
  }
  return out;
}

async function pipe(bytes: Uint8Array, transform: CompressionStream | DecompressionStream): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(transform);
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

export function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  return pipe(bytes, new CompressionStream("gzip"));
}

export function gunzip(bytes: Uint8Array): Promise<Uint8Array> {
  return pipe(bytes, new DecompressionStream("gzip"));
}

/** What one archive object holds: its key, its gzip body, its manifest entry and its messages. */
export interface ArchiveObject {
  kind: ArchiveKind;
  hour: string;
  key: string;
  body: Uint8Array;
  entry: ManifestEntry;
  messages: Envelope[];
}

const encoder = new TextEncoder();

/** A message's identity: ids are the sender's, unique per source (docs/topology.md). */
export function messageKey(message: Pick<Envelope, "source" | "id">): string {
  return `${message.source}\u001f${message.id}`;
}

const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** By id, then source: a total order, so that the same messages always make the same bytes. */
export function byIdThenSource(a: Envelope, b: Envelope): number {
  return compare(a.id, b.id) || compare(a.source, b.source);
}

/**
 * Turns a batch into archive objects, one per hour of the messages' timestamps. Each object is
 * the NDJSON of its messages sorted by id (then source), so the same messages always make the
 * same bytes, and its key is the SHA-256 of those bytes: a redelivered batch writes the same key
 * with the same content instead of a second copy. A message repeated inside the batch is kept once.
 */
export async function buildArchiveObjects(kind: ArchiveKind, messages: readonly Envelope[]): Promise<ArchiveObject[]> {
  const byHour = new Map<string, Map<string, Envelope>>();
  for (const message of messages) {
    const hour = hourOf(message.timestamp);
    const group = byHour.get(hour) ?? new Map<string, Envelope>();
    if (!group.has(messageKey(message))) group.set(messageKey(message), message);
    byHour.set(hour, group);
  }
  const objects: ArchiveObject[] = [];
  for (const [hour, group] of [...byHour].sort(([a], [b]) => compare(a, b))) {
    const sorted = [...group.values()].sort(byIdThenSource);
    const text = toNdjson(sorted);
    const raw = encoder.encode(text);
    const body = await gzip(raw);
    const times = sorted.map((m) => Date.parse(m.timestamp));
    const key = dataKey(kind, hour, await sha256Hex(text));
    objects.push({
      kind,
      hour,
      key,
      body,
      messages: sorted,
      entry: {
        key,
        count: sorted.length,
        bytes: raw.byteLength,
        compressed_bytes: body.byteLength,
        first: new Date(Math.min(...times)).toISOString(),
        last: new Date(Math.max(...times)).toISOString(),
      },
    });
  }
  return objects;
}

export function emptyManifest(kind: ArchiveKind, hour: string): HourManifest {
  return { version: 1, kind, hour, objects: [] };
}

/**
 * The manifest with these entries added, sorted by key; undefined when it already lists every
 * one of them (a redelivered batch), so the caller writes nothing.
 */
export function withEntries(manifest: HourManifest, entries: readonly ManifestEntry[]): HourManifest | undefined {
  const known = new Set(manifest.objects.map((o) => o.key));
  const added: ManifestEntry[] = [];
  for (const entry of entries) {
    if (known.has(entry.key)) continue;
    known.add(entry.key);
    added.push(entry);
  }
  if (added.length === 0) return undefined;
  const objects = [...manifest.objects, ...added].sort((a, b) => compare(a.key, b.key));
  return { ...manifest, objects };
}
