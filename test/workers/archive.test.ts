/**
 * The archive inside workerd: messages published through the real path land in the local R2
 * bucket as gzip NDJSON under their hour, with a manifest per hour; redelivery, hour splits,
 * the kind filter, concurrent manifest writers and R2 failures.
 */
import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { consume } from "../../queues/consumer";
import { addToManifest, archive } from "../../queues/consumers/archive";
import { gunzip, hourOf, manifestKey, manifestMonthPrefix, parseManifestKey, parseNdjson, REPLAY_MARK } from "../../shared/archive";
import { findQueue } from "../../shared/bus/topology";
import { derivedId } from "../../shared/ids";
import { type ArchiveKind, HourManifest } from "../../shared/schemas/archive";
import { ADMIN, call, createDevice, eventually, json, post, uniqueId } from "./helpers";

const decoder = new TextDecoder();

function queueNamed(name: string) {
  const queue = findQueue(name);
  if (!queue) throw new Error(`topology lost ${name}`);
  return queue;
}

async function manifest(kind: ArchiveKind, hour: string): Promise<HourManifest | undefined> {
  const object = await env.ARCHIVE.get(manifestKey(kind, hour));
  return object ? HourManifest.parse(await object.json()) : undefined;
}

async function readObject(key: string): Promise<{ text: string; lines: Record<string, unknown>[] }> {
  const object = await env.ARCHIVE.get(key);
  if (!object) throw new Error(`no object ${key}`);
  const text = decoder.decode(await gunzip(new Uint8Array(await object.arrayBuffer())));
  return { text, lines: parseNdjson(text).map((l) => l.value as Record<string, unknown>) };
}

/** The archived copy of a message: the object (by its manifest) whose lines hold that id. */
async function findArchived(kind: ArchiveKind, hour: string, id: string) {
  const m = await manifest(kind, hour);
  for (const entry of m?.objects ?? []) {
    const { lines } = await readObject(entry.key);
    const line = lines.find((l) => l.id === id);
    if (line) return { entry, line, lines };
  }
  return undefined;
}

async function dataKeys(kind: ArchiveKind, hour: string): Promise<string[]> {
  const prefix = `archive/${kind}/${hour.slice(0, 4)}/${hour.slice(5, 7)}/${hour.slice(8, 10)}/${hour.slice(11, 13)}/`;
  return (await env.ARCHIVE.list({ prefix })).objects.map((o) => o.key);
}

// Hours 4 to about 130 back (the edge takes timestamps up to MAX_MESSAGE_AGE_DAYS, 7, old), two
// apart so that a test may also use the hour after its own.
let hourOffset = 4 + 2 * Math.floor(Math.random() * 50);
/** A past hour no other test writes to. */
function uniqueHour(): { hour: string; at: (minute: number) => string } {
  hourOffset += 2;
  const start = (Math.floor(Date.now() / 3_600_000) - hourOffset) * 3_600_000;
  return { hour: hourOf(start), at: (minute: number) => new Date(start + minute * 60_000).toISOString() };
}

function envelope(
  id: string,
  timestamp: string,
  type: "event" | "metric" = "event",
  metadata: Record<string, string> = {},
  source = "tester",
) {
  const base = { id, correlation_id: id, source, timestamp, received_at: timestamp, metadata, schema_version: 1 };
  return type === "event"
    ? { ...base, type, exchange: "home.events", routing_key: "home.lab.tester.state_changed", payload: { event_type: "state_changed" } }
    : { ...base, type, exchange: "metrics", routing_key: "metrics.sensors.temperature.lab", payload: { temperature: 21.5 } };
}

async function runArchive(queueName: "archive.events" | "archive.metrics", bodies: unknown[], attempts = 1, targetEnv: Env = env) {
  const queue = queueNamed(queueName);
  const batch = createMessageBatch(
    queue.cloudflare,
    bodies.map((body, i) => ({ id: `msg-${i}`, timestamp: new Date(), attempts, body })),
  );
  const ctx = createExecutionContext();
  await consume(batch, { env: targetEnv, queue }, archive);
  return getQueueResult(batch, ctx);
}

describe("the archive, through the real path", () => {
  it("archives a temperature reading, normalized, under archive/metrics, its hour, and its manifest", async () => {
    const { device, token } = await createDevice({ id: uniqueId("arch"), type: "temperature", room: "lab" });
    const { hour, at } = uniqueHour();
    const inputId = `t-${device.id}`;
    const res = await post("/v1/telemetry", token, { id: inputId, timestamp: at(7), payload: { temperature: { value: 68, unit: "°F" } } });
    expect(res.status).toBe(202);

    // One hop (issue 13): the reading is archived as it was consumed, with canonical units; no
    // transformed copy with a derived id exists any more.
    const outputId = inputId;
    const found = await eventually(() => findArchived("metrics", hour, outputId), 15_000, "the archived reading");
    expect(found.line).toMatchObject({
      id: inputId,
      type: "telemetry",
      exchange: "sensors",
      routing_key: "sensors.temperature.lab",
      source: device.id,
      timestamp: at(7),
      payload: { temperature: { value: 20, unit: "°C", original: { value: 68, unit: "°F" } } },
    });
    expect(found.entry.key).toMatch(
      new RegExp(`^archive/metrics/${hour.replaceAll("-", "/").replace("T", "/")}/[0-9a-f]{64}\\.ndjson\\.gz$`),
    );
    expect(found.entry).toMatchObject({ count: found.lines.length, first: expect.any(String), last: expect.any(String) });
    // Each archive queue takes only its own kind (docs/topology.md, "Archive bindings").
    expect(await findArchived("events", hour, outputId)).toBeUndefined();
    // No transformed copy is archived beside it, and the reading is archived once (from ingest).
    expect(await findArchived("metrics", hour, await derivedId(device.id, inputId, "transformer"))).toBeUndefined();
    expect(found.lines.filter((l) => (l as { id?: string }).id === inputId)).toHaveLength(1);

    const history = await eventually(
      async () => {
        const body = await json<{ messages: { id: string; steps: { queue: string; status: string; detail: string | null }[] }[] }>(
          await call(`/v1/messages?id=${outputId}`, { headers: ADMIN }),
        );
        const steps = body.messages[0]?.steps ?? [];
        return steps.some((s) => s.status === "stored") ? steps : undefined;
      },
      10_000,
      "the stored step",
    );
    expect(history).toContainEqual(expect.objectContaining({ queue: "archive.metrics", status: "stored", detail: found.entry.key }));
  });

  it("archives a state change under archive/events", async () => {
    const { device, token } = await createDevice({ id: uniqueId("archev"), type: "switch", room: "hall" });
    const { hour, at } = uniqueHour();
    const id = `e-${device.id}`;
    const res = await post("/v1/events", token, {
      id,
      timestamp: at(42),
      event_type: "state_changed",
      payload: { previous_state: "off", current_state: "on" },
    });
    expect(res.status).toBe(202);
    const found = await eventually(() => findArchived("events", hour, id), 15_000, "the archived event");
    expect(found.line).toMatchObject({
      id,
      type: "event",
      exchange: "home.events",
      routing_key: `home.hall.${device.id}.state_changed`,
      payload: { event_type: "state_changed", current_state: "on" },
    });
    expect(await findArchived("metrics", hour, id)).toBeUndefined();
  });
});

describe("the archive consumer", () => {
  it("stores a redelivered batch once: same key, same content, one manifest entry", async () => {
    const { hour, at } = uniqueHour();
    const ids = [uniqueId("b"), uniqueId("a"), uniqueId("c")];
    const bodies = ids.map((id, i) => envelope(id, at(i * 10)));

    const first = await runArchive("archive.events", bodies);
    expect(first.explicitAcks.sort()).toEqual(["msg-0", "msg-1", "msg-2"]);
    const keys = await dataKeys("events", hour);
    expect(keys).toHaveLength(1);
    const before = await readObject(keys[0] ?? "");

    // Delivered again, in another order and on a later attempt: the same object, written again.
    const second = await runArchive("archive.events", [...bodies].reverse(), 2);
    expect(second.explicitAcks).toHaveLength(3);
    expect(await dataKeys("events", hour)).toEqual(keys);
    const after = await readObject(keys[0] ?? "");
    expect(after.text).toBe(before.text);
    expect(after.lines.map((l) => l.id)).toEqual([...ids].sort());
    expect((await manifest("events", hour))?.objects.map((o) => o.key)).toEqual(keys);
  });

  it("keeps two senders' messages that share an id (ids are unique per sender)", async () => {
    const { hour, at } = uniqueHour();
    const id = uniqueId("same");
    const result = await runArchive("archive.events", [
      envelope(id, at(1), "event", {}, "sender-b"),
      envelope(id, at(2), "event", {}, "sender-a"),
      envelope(id, at(2), "event", {}, "sender-a"),
    ]);
    expect(result.explicitAcks).toHaveLength(3);
    const m = await manifest("events", hour);
    expect(m?.objects.map((o) => o.count)).toEqual([2]);
    expect((await readObject(m?.objects[0]?.key ?? "")).lines.map((l) => l.source)).toEqual(["sender-a", "sender-b"]);
  });

  it("splits a batch that spans hours into one object, and one manifest entry, per hour", async () => {
    const { hour, at } = uniqueHour();
    const next = hourOf(Date.parse(at(60)));
    const early = uniqueId("early");
    const late = uniqueId("late");
    const result = await runArchive("archive.metrics", [envelope(early, at(59), "metric"), envelope(late, at(61), "metric")]);
    expect(result.explicitAcks).toHaveLength(2);

    const [a, b] = [await manifest("metrics", hour), await manifest("metrics", next)];
    expect(a?.objects).toHaveLength(1);
    expect(b?.objects).toHaveLength(1);
    expect((await readObject(a?.objects[0]?.key ?? "")).lines.map((l) => l.id)).toEqual([early]);
    expect((await readObject(b?.objects[0]?.key ?? "")).lines.map((l) => l.id)).toEqual([late]);
    expect(a?.objects[0]).toMatchObject({ count: 1, first: at(59), last: at(59) });
  });

  it("keeps only its own kind, and not what a replay from the archive brings back", async () => {
    const { hour, at } = uniqueHour();
    const event = uniqueId("ev");
    const metric = uniqueId("me");
    const replayed = uniqueId("re");
    const result = await runArchive("archive.events", [
      envelope(event, at(1)),
      envelope(metric, at(2), "metric"),
      envelope(replayed, at(3), "event", { [REPLAY_MARK]: "archive" }),
    ]);
    // Skipped messages are acknowledged: they are not this queue's to keep.
    expect(result.explicitAcks).toHaveLength(3);
    const m = await manifest("events", hour);
    expect(m?.objects).toHaveLength(1);
    expect((await readObject(m?.objects[0]?.key ?? "")).lines.map((l) => l.id)).toEqual([event]);
    expect(await manifest("metrics", hour)).toBeUndefined();
  });

  it("lists an hour's manifest under its month's prefix, without listing the data", async () => {
    const { hour, at } = uniqueHour();
    await runArchive("archive.events", [envelope(uniqueId("l"), at(5))]);
    const listed = await env.ARCHIVE.list({ prefix: manifestMonthPrefix("events", hour) });
    const hours = listed.objects.map((o) => parseManifestKey(o.key));
    expect(hours).toContainEqual({ kind: "events", hour });
    expect(listed.objects.every((o) => o.key.startsWith("manifest/events/"))).toBe(true);
  });

  it("keeps every entry when many writers add to one hour's manifest at once", async () => {
    const { hour, at } = uniqueHour();
    const entries = Array.from({ length: 12 }, (_, i) => ({
      key: `archive/events/${hour.replaceAll("-", "/").replace("T", "/")}/${i.toString(16).padStart(64, "0")}.ndjson.gz`,
      count: 1,
      bytes: 10,
      compressed_bytes: 10,
      first: at(i),
      last: at(i),
    }));
    await Promise.all(entries.map((entry) => addToManifest(env.ARCHIVE, "events", hour, [entry])));
    // And again: nothing changes.
    await Promise.all(entries.map((entry) => addToManifest(env.ARCHIVE, "events", hour, [entry])));
    expect((await manifest("events", hour))?.objects.map((o) => o.key)).toEqual(entries.map((e) => e.key));
  });

  it("retries when R2 fails, and dead-letters after three retries", async () => {
    const { hour, at } = uniqueHour();
    const id = uniqueId("r2down");
    const failing = {
      ...env,
      ARCHIVE: {
        ...env.ARCHIVE,
        put: () => Promise.reject(new Error("R2 is unavailable")),
        get: () => Promise.reject(new Error("R2 is unavailable")),
      },
    } as unknown as Env;
    const first = await runArchive("archive.events", [envelope(id, at(0))], 1, failing);
    expect(first.retryMessages).toEqual([{ msgId: "msg-0" }]);
    expect(first.explicitAcks).toEqual([]);

    const last = await runArchive("archive.events", [envelope(id, at(0))], 4, failing);
    expect(last.explicitAcks).toEqual(["msg-0"]);
    const letter = await eventually(
      async () => {
        const body = await json<{ dead_letters: { message_id: string; queue: string; error: { code: string } }[] }>(
          await call("/v1/dead-letters?queue=archive.events&limit=1000", { headers: ADMIN }),
        );
        return body.dead_letters.find((d) => d.message_id === id);
      },
      10_000,
      "the dead letter",
    );
    expect(letter).toMatchObject({ queue: "archive.events", error: { code: "archive_unavailable" } });
    expect(await dataKeys("events", hour)).toEqual([]);
  });

  it("dead-letters at once a batch whose hour has a manifest that is not one", async () => {
    const { hour, at } = uniqueHour();
    await env.ARCHIVE.put(manifestKey("events", hour), "not json");
    const result = await runArchive("archive.events", [envelope(uniqueId("bad"), at(0))]);
    expect(result.retryMessages).toEqual([]);
    expect(result.explicitAcks).toEqual(["msg-0"]);
  });
});
