/**
 * `export`: a range's messages to one local NDJSON file, one envelope a line, ordered by
 * timestamp, one copy per message (source and id). Written to a temporary file and renamed at the end, so an
 * interrupted export never leaves a file that looks complete.
 */
import { once } from "node:events";
import { createWriteStream, renameSync, rmSync } from "node:fs";
import type { Writable } from "node:stream";
import { toNdjson } from "../../shared/archive.ts";
import type { ArchiveKind } from "../../shared/schemas/archive.ts";
import { EXIT } from "./errors.ts";
import type { CommandResult } from "./output.ts";
import type { Progress } from "./progress.ts";
import { describeRange, type TimeRange } from "./range.ts";
import { plan, type ReadTally, readHours } from "./select.ts";
import type { ArchiveStore } from "./store.ts";

async function write(stream: Writable, chunk: string): Promise<void> {
  if (!stream.write(chunk)) await once(stream, "drain");
}

async function close(stream: Writable): Promise<void> {
  stream.end();
  await once(stream, "finish");
}

export async function exportRange(
  store: ArchiveStore,
  options: { kinds: ArchiveKind[]; range: TimeRange; out: string; progress: Progress },
): Promise<CommandResult> {
  const planned = await plan(store, options.kinds, options.range);
  const toStdout = options.out === "-";
  const partial = `${options.out}.partial`;
  const stream = toStdout ? process.stdout : createWriteStream(partial, { mode: 0o644 });
  const tally: ReadTally = { objects: 0, duplicates: 0, problems: [...planned.problems] };
  let messages = 0;

  options.progress.start(planned.objects);
  try {
    for await (const hour of readHours(store, planned, tally, () => options.progress.increment())) {
      if (hour.messages.length > 0) await write(stream, toNdjson(hour.messages));
      messages += hour.messages.length;
    }
  } catch (error) {
    if (!toStdout) {
      stream.destroy();
      rmSync(partial, { force: true });
    }
    throw error;
  } finally {
    options.progress.stop();
  }
  if (!toStdout) {
    await close(stream);
    renameSync(partial, options.out);
  }

  const summary = {
    command: "export",
    bucket: store.bucket,
    range: describeRange(options.range),
    kinds: options.kinds,
    out: options.out,
    objects: tally.objects,
    messages,
    duplicates: tally.duplicates,
    problems: tally.problems,
  };
  const lines = [
    `exported ${messages} messages from ${tally.objects} objects to ${toStdout ? "stdout" : options.out}` +
      (tally.duplicates > 0 ? ` (${tally.duplicates} duplicate copies left out)` : ""),
    ...tally.problems.map((p) => `problem: ${p.key}: ${p.error}`),
  ];
  return { summary, text: lines.join("\n"), exitCode: tally.problems.length > 0 ? EXIT.failures : EXIT.ok };
}
