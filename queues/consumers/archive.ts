/**
 * Seed 001's archiver (a MinIO archiver there, R2 here): the consumers of `archive.events` and
 * `archive.metrics` write each batch as gzip-compressed NDJSON to the `ARCHIVE` bucket, one object
 * per hour of the messages' timestamps, keyed by the SHA-256 of its content, and add the object
 * to that hour's manifest. Layout and format: shared/archive.ts and docs/archive.md.
 *
 * Idempotent: a redelivered batch makes the same bytes, so the same key (an overwrite with equal
 * content), and the manifest lists a key once. Every R2 failure is retriable; the shared
 * discipline (queues/consumer.ts) retries three times, then dead-letters.
 */
import { buildArchiveObjects, emptyManifest, isArchiveReplay, kindOf, manifestKey, withEntries } from "../../shared/archive";
import { type ArchiveKind, HourManifest, type ManifestEntry } from "../../shared/schemas/archive";
import type { Envelope } from "../../shared/schemas/message";
import type { BatchHandler } from "../consumer";
import { ConsumerError } from "../errors";
import { recordSteps, type StepRecord } from "../history";

const KIND_BY_QUEUE: Record<string, ArchiveKind> = { "archive.events": "events", "archive.metrics": "metrics" };

/** Attempts at the manifest's compare-and-swap before the batch is retried by the queue. */
const MANIFEST_ATTEMPTS = 8;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Adds entries to an hour's manifest with a compare-and-swap on its etag: R2 writes only if the
 * manifest is still the one read (or still absent), so concurrent consumers of the same hour
 * never lose each other's entries. A lost race reads again and retries.
 */
export async function addToManifest(bucket: R2Bucket, kind: ArchiveKind, hour: string, entries: ManifestEntry[]): Promise<void> {
  const key = manifestKey(kind, hour);
  for (let attempt = 1; attempt <= MANIFEST_ATTEMPTS; attempt++) {
    const current = await bucket.get(key);
    let manifest = emptyManifest(kind, hour);
    if (current) {
      const parsed = HourManifest.safeParse(await current.json().catch(() => undefined));
      if (!parsed.success || parsed.data.kind !== kind || parsed.data.hour !== hour) {
        // Retrying cannot fix it: dead-letter the batch so that someone looks (docs/archive.md).
        throw new ConsumerError("archive_manifest_invalid", `${key} is not a manifest of ${kind} ${hour}`, { retriable: false });
      }
      manifest = parsed.data;
    }
    const next = withEntries(manifest, entries);
    if (!next) return;
    const written = await bucket.put(key, JSON.stringify(next), {
      httpMetadata: { contentType: "application/json" },
      onlyIf: current ? { etagMatches: current.etag } : { etagDoesNotMatch: "*" },
    });
    if (written) return;
    await sleep(10 * attempt + Math.random() * 40);
  }
  throw new ConsumerError("archive_manifest_contention", `${key} changed under every one of ${MANIFEST_ATTEMPTS} attempts`, {
    retriable: true,
  });
}

/** Which of the batch this queue keeps: its own kind, and not what a replay from the archive brings back. */
export function archivable(kind: ArchiveKind, messages: readonly Envelope[]): Envelope[] {
  return messages.filter((m) => kindOf(m.type) === kind && !isArchiveReplay(m));
}

export const archive: BatchHandler = async (messages, { env, queue, steps: noted }) => {
  const kind = KIND_BY_QUEUE[queue.name];
  if (!kind) throw new ConsumerError("misrouted", `the archive consumer does not archive queue "${queue.name}"`, { retriable: false });
  const objects = await buildArchiveObjects(kind, archivable(kind, messages));
  const errors = new Map<string, unknown>();
  const steps: StepRecord[] = [];

  // Objects of different hours succeed or fail on their own: only the failed hour's messages are
  // retried, so a retry rewrites as little as possible.
  await Promise.all(
    objects.map(async (object) => {
      try {
        await env.ARCHIVE.put(object.key, object.body, {
          httpMetadata: { contentType: "application/gzip" },
          customMetadata: { count: String(object.entry.count), first: object.entry.first, last: object.entry.last },
        });
        await addToManifest(env.ARCHIVE, kind, object.hour, [object.entry]);
        for (const message of object.messages) steps.push({ message, queue: queue.name, step: "stored", detail: object.key });
      } catch (error) {
        const failure =
          error instanceof ConsumerError
            ? error
            : new ConsumerError("archive_unavailable", `writing ${object.key} to R2 failed: ${String(error)}`, {
                retriable: true,
                cause: error,
              });
        for (const message of object.messages) errors.set(message.id, failure);
      }
    }),
  );
  if (noted) noted.push(...steps);
  else await recordSteps(env, steps);
  return errors;
};
