/**
 * Choosing what a range holds: the manifests of its hours (the plan), then the messages, one hour
 * at a time — in range, one copy per message (source and id), ordered by timestamp. A message
 * always lands in the hour of its timestamp, so removing duplicates hour by hour removes them all,
 * and memory holds one hour, not the whole range.
 */
import { byIdThenSource, messageKey } from "../../shared/archive.ts";
import type { ArchiveKind, ManifestEntry } from "../../shared/schemas/archive.ts";
import type { Envelope } from "../../shared/schemas/message.ts";
import { CliError } from "./errors.ts";
import { inRange, overlaps, type TimeRange } from "./range.ts";
import { type ArchiveStore, mapLimit } from "./store.ts";

export interface PlannedObject {
  kind: ArchiveKind;
  hour: string;
  entry: ManifestEntry;
}

export interface Problem {
  key: string;
  error: string;
}

export interface Plan {
  range: TimeRange;
  kinds: ArchiveKind[];
  /** Objects whose time span meets the range, by hour, in hour order. */
  hours: Map<string, PlannedObject[]>;
  objects: number;
  /** Messages in those objects (whole objects: the edges of the range are trimmed when read). */
  messages: number;
  /** Manifests that could not be read. */
  problems: Problem[];
}

export interface HourRead {
  hour: string;
  messages: Envelope[];
}

export interface ReadTally {
  objects: number;
  /** Copies of a message already read (stored twice by an at-least-once consumer). */
  duplicates: number;
  /** Objects that could not be read, and lines that were not envelopes. */
  problems: Problem[];
}

export async function plan(store: ArchiveStore, kinds: ArchiveKind[], range: TimeRange): Promise<Plan> {
  const keys = (await Promise.all(kinds.map((kind) => store.manifestKeys(kind, range)))).flat();
  const problems: Problem[] = [];
  const manifests = await mapLimit(keys, 8, async (key) => {
    try {
      return await store.manifest(key);
    } catch (error) {
      if (!(error instanceof CliError)) throw error;
      problems.push({ key, error: error.message });
      return undefined;
    }
  });
  const hours = new Map<string, PlannedObject[]>();
  let objects = 0;
  let messages = 0;
  for (const manifest of manifests) {
    if (!manifest) continue;
    for (const entry of manifest.objects) {
      if (!overlaps(range, entry.first, entry.last)) continue;
      const list = hours.get(manifest.hour) ?? [];
      list.push({ kind: manifest.kind, hour: manifest.hour, entry });
      hours.set(manifest.hour, list);
      objects++;
      messages += entry.count;
    }
  }
  const sorted = new Map([...hours].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return { range, kinds, hours: sorted, objects, messages, problems };
}

function byTime(a: Envelope, b: Envelope): number {
  return Date.parse(a.timestamp) - Date.parse(b.timestamp) || byIdThenSource(a, b);
}

/** The plan's messages hour by hour; `onObject` is told of each object read (for a progress bar). */
export async function* readHours(
  store: ArchiveStore,
  planned: Plan,
  tally: ReadTally,
  onObject: (object: PlannedObject, messages: number) => void = () => {},
): AsyncGenerator<HourRead> {
  for (const [hour, objects] of planned.hours) {
    const reads = await mapLimit(objects, 4, async (object) => {
      try {
        const read = await store.messages(object.entry.key);
        for (const bad of read.invalid) tally.problems.push({ key: `${object.entry.key}:${bad.line}`, error: bad.error });
        return read.messages;
      } catch (error) {
        if (!(error instanceof CliError)) throw error;
        tally.problems.push({ key: object.entry.key, error: error.message });
        return [];
      } finally {
        tally.objects++;
      }
    });
    const seen = new Map<string, Envelope>();
    for (const [i, messages] of reads.entries()) {
      const object = objects[i];
      if (object) onObject(object, messages.length);
      for (const message of messages) {
        if (!inRange(planned.range, message.timestamp)) continue;
        const key = messageKey(message);
        if (seen.has(key)) tally.duplicates++;
        else seen.set(key, message);
      }
    }
    yield { hour, messages: [...seen.values()].sort(byTime) };
  }
}
