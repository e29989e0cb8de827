/** `list`: what the archive holds in a range, per kind and hour, from the manifests alone. */
import type { ArchiveKind } from "../../shared/schemas/archive.ts";
import { EXIT } from "./errors.ts";
import { bytes, type CommandResult, table } from "./output.ts";
import { describeRange, type TimeRange } from "./range.ts";
import { plan } from "./select.ts";
import type { ArchiveStore } from "./store.ts";

export interface HourSummary {
  kind: ArchiveKind;
  hour: string;
  objects: number;
  messages: number;
  bytes: number;
  compressed_bytes: number;
  first: string;
  last: string;
  keys?: string[];
}

export async function list(
  store: ArchiveStore,
  options: { kinds: ArchiveKind[]; range: TimeRange; objects: boolean },
): Promise<CommandResult> {
  const planned = await plan(store, options.kinds, options.range);
  const rows = new Map<string, HourSummary>();
  for (const objects of planned.hours.values()) {
    for (const { kind, hour, entry } of objects) {
      const id = `${kind} ${hour}`;
      const row = rows.get(id) ?? {
        kind,
        hour,
        objects: 0,
        messages: 0,
        bytes: 0,
        compressed_bytes: 0,
        first: entry.first,
        last: entry.last,
      };
      row.objects++;
      row.messages += entry.count;
      row.bytes += entry.bytes;
      row.compressed_bytes += entry.compressed_bytes;
      if (entry.first < row.first) row.first = entry.first;
      if (entry.last > row.last) row.last = entry.last;
      if (options.objects) {
        row.keys ??= [];
        row.keys.push(entry.key);
      }
      rows.set(id, row);
    }
  }
  const hours = [...rows.values()].sort((a, b) => (a.hour === b.hour ? a.kind.localeCompare(b.kind) : a.hour < b.hour ? -1 : 1));
  const totals = {
    hours: hours.length,
    objects: planned.objects,
    messages: planned.messages,
    bytes: hours.reduce((n, h) => n + h.bytes, 0),
    compressed_bytes: hours.reduce((n, h) => n + h.compressed_bytes, 0),
  };
  const summary = {
    command: "list",
    bucket: store.bucket,
    range: describeRange(options.range),
    kinds: options.kinds,
    hours,
    totals,
    problems: planned.problems,
  };

  const lines: string[] = [];
  if (hours.length > 0) {
    lines.push(
      table(
        ["kind", "hour (UTC)", "objects", "messages", "ndjson", "gzip"],
        hours.map((h) => [h.kind, h.hour, String(h.objects), String(h.messages), bytes(h.bytes), bytes(h.compressed_bytes)]),
        [false, false, true, true, true, true],
      ),
    );
    if (options.objects) for (const h of hours) for (const key of h.keys ?? []) lines.push(key);
  }
  const { from, to } = summary.range;
  lines.push(
    `${totals.hours} hours, ${totals.objects} objects, ${totals.messages} messages, ${bytes(totals.compressed_bytes)} compressed ` +
      `(${bytes(totals.bytes)} NDJSON) in [${from}, ${to}); counts are whole objects that meet the range`,
  );
  for (const p of planned.problems) lines.push(`problem: ${p.key}: ${p.error}`);
  return { summary, text: lines.join("\n"), exitCode: planned.problems.length > 0 ? EXIT.failures : EXIT.ok };
}
