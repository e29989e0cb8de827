/**
 * The archive's own records: what kind of archive a message belongs to, and the per-hour
 * manifest that lists the objects of that hour. Written by the archive consumer inside the
 * Worker, read by tools/archive over the S3 API; both take their types from here.
 */
import { z } from "zod";
import { Timestamp } from "./message.ts";

/** `archive.events` keeps events, alerts, command results and AI messages; `archive.metrics` keeps readings. */
export const ArchiveKind = z.enum(["events", "metrics"]);
export type ArchiveKind = z.infer<typeof ArchiveKind>;

/** An hour in UTC, `YYYY-MM-DDTHH`: the partition of the key layout. */
export const ArchiveHour = z.string().regex(/^\d{4}-\d{2}-\d{2}T\d{2}$/, { message: "an hour is YYYY-MM-DDTHH (UTC)" });

/** One data object of an hour. */
export const ManifestEntry = z.strictObject({
  /** The object's key: archive/<kind>/<yyyy>/<mm>/<dd>/<hh>/<sha256>.ndjson.gz */
  key: z.string().min(1),
  /** Messages in the object (lines of NDJSON). */
  count: z.int().positive(),
  /** Size of the NDJSON before compression. */
  bytes: z.int().nonnegative(),
  /** Size of the stored gzip object. */
  compressed_bytes: z.int().nonnegative(),
  /** The earliest and latest message `timestamp` (device time) in the object. */
  first: Timestamp,
  last: Timestamp,
});
export type ManifestEntry = z.infer<typeof ManifestEntry>;

/** `manifest/<kind>/<yyyy>/<mm>/<dd>/<hh>.json`: every object of one hour, sorted by key. */
export const HourManifest = z.strictObject({
  version: z.literal(1),
  kind: ArchiveKind,
  hour: ArchiveHour,
  objects: z.array(ManifestEntry),
});
export type HourManifest = z.infer<typeof HourManifest>;
