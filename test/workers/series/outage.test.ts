/**
 * The series database down or slow: the sink retries and dead-letters, a replay after the
 * restart stores every reading exactly once, the circuit breaker fails fast, and the query API
 * answers 503 with Retry-After in bounded time. In "workers-postgres" the outage is real (the
 * server is stopped, or a table lock stalls writes); D1 cannot be stopped, so in "workers" the
 * same tests run with a store whose calls fail or never answer.
 */
import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import postgres from "postgres";
import { afterEach, describe, expect, it } from "vitest";
import { openSeriesStore } from "../../../platform/series/open";
import {
  breakerFor,
  type CallOptions,
  readWithRetries,
  resetBreakers,
  SeriesBreaker,
  SeriesUnavailable,
  writeWithBreaker,
} from "../../../platform/series/resilience";
import { withWorkerdSocket } from "../../../platform/series/workerd-socket";
import { consume } from "../../../queues/consumer";
import { seriesSink } from "../../../queues/consumers/series";
import { findQueue } from "../../../shared/bus/topology";
import { rowsOf } from "../../../shared/series/rows";
import type { SeriesStore } from "../../../shared/series/store";
import { ADMIN, call, eventually, json, uniqueId } from "../helpers";
import { backend, label, metric, postgresServer, rowsPerMessage } from "./helpers";

const found = findQueue("metrics.sensors");
if (!found) throw new Error("topology lost metrics.sensors");
const queue = found;

/** A store whose every call fails ("error") or never answers ("hang"), remembering how it was closed. */
function brokenStore(mode: "error" | "hang", log: { calls: number; closedNow: boolean[] }): SeriesStore {
  const fail = () => {
    log.calls++;
    return mode === "error" ? Promise.reject(new Error("D1_ERROR: the database is unavailable (injected)")) : new Promise<never>(() => {});
  };
  return {
    kind: "d1",
    write: fail,
    partials: fail,
    raw: fail,
    latest: fail,
    rollupState: fail,
    rollup: fail,
    prune: fail,
    close: async (now) => {
      log.closedNow.push(now === true);
    },
  };
}

/** Down and up: the real server in workers-postgres, an injected failure on D1. */
let injectedDown = false;
let serverDown = false;
const injectedLog = { calls: 0, closedNow: [] as boolean[] };
const outage: { open: CallOptions["open"] } = {
  open: backend === "postgres" ? undefined : () => (injectedDown ? brokenStore("error", injectedLog) : openSeriesStore(env)),
};

async function down() {
  if (backend === "postgres") await postgresServer("stop");
  else injectedDown = true;
  serverDown = true;
}

async function up() {
  if (backend === "postgres") await postgresServer("start");
  else injectedDown = false;
  serverDown = false;
}

afterEach(async () => {
  if (serverDown) await up();
  resetBreakers();
});

async function deliver(handlerOptions: CallOptions, bodies: unknown[], attempts: number) {
  const batch = createMessageBatch(
    queue.cloudflare,
    bodies.map((body, i) => ({ id: `q${i}`, attempts, body, timestamp: new Date() })),
  );
  const ctx = createExecutionContext();
  await consume(batch, { env, queue }, seriesSink(handlerOptions));
  return getQueueResult(batch, ctx);
}

const settings = { failures: 100, cooldownMs: 1000, timeoutMs: 3000 };

describe(`the series database down or slow (${label})`, () => {
  it("retries while the database is down, dead-letters after the last retry, and a replay stores every reading once", async () => {
    const device = uniqueId("outage");
    const messages = [1, 2, 3].map((i) =>
      metric(`${device}-${i}`, device, { temperature: { value: 20 + i, unit: "°C" }, humidity: 50 + i }),
    );
    const options: CallOptions = { open: outage.open, breaker: new SeriesBreaker(settings) };
    // The first message was stored before the outage; its redelivery rides along below.
    expect((await deliver(options, [messages[0]], 1)).explicitAcks).toEqual(["q0"]);

    await down();
    for (const attempts of [1, 2, 3]) {
      const result = await deliver(options, messages, attempts);
      expect(result.retryMessages.map((r) => r.msgId).sort()).toEqual(["q0", "q1", "q2"]);
      expect(result.explicitAcks).toEqual([]);
    }
    const last = await deliver(options, messages, 4);
    expect(last.explicitAcks.sort()).toEqual(["q0", "q1", "q2"]);
    const letters = await eventually(async () => {
      const body = await json<{ dead_letters: { id: number; message_id: string; attempts: number; error: { code: string } }[] }>(
        await call("/v1/dead-letters?queue=metrics.sensors&limit=1000", { headers: ADMIN }),
      );
      const ours = body.dead_letters.filter((d) => d.message_id.startsWith(`${device}-`));
      return ours.length === 3 ? ours : undefined;
    });
    expect(letters.map((l) => [l.attempts, l.error.code])).toEqual([
      [4, "series_unavailable"],
      [4, "series_unavailable"],
      [4, "series_unavailable"],
    ]);
    const history = await json<{ messages: { steps: { status: string }[] }[] }>(
      await call(`/v1/messages?id=${device}-2`, { headers: ADMIN }),
    );
    expect(history.messages[0]?.steps.map((s) => s.status).sort()).toEqual(["dead_lettered", "retried"]);

    await up();
    const replay = await call("/v1/dead-letters/replay", {
      method: "POST",
      headers: { ...ADMIN, "content-type": "application/json" },
      body: JSON.stringify({ ids: letters.map((l) => l.id) }),
    });
    expect(await json(replay)).toMatchObject({ replayed: 3 });
    const expected = { [`${device}-1`]: 2, [`${device}-2`]: 2, [`${device}-3`]: 2 };
    await eventually(async () => (Object.keys(await rowsPerMessage(device)).length === 3 ? true : undefined), 15_000, "the replayed rows");
    expect(await rowsPerMessage(device)).toEqual(expected);
    // Replaying or redelivering once more changes nothing.
    expect((await deliver(options, messages, 1)).explicitAcks.sort()).toEqual(["q0", "q1", "q2"]);
    expect(await rowsPerMessage(device)).toEqual(expected);
  });

  it("opens the circuit breaker after consecutive failures, fails fast while open, and closes after the cool-down", async () => {
    const breaker = new SeriesBreaker({ failures: 2, cooldownMs: 1500, timeoutMs: 3000 });
    const device = uniqueId("breaker");
    const rows = rowsOf(metric(`${device}-1`, device, { level: 1 }));
    const write = () => writeWithBreaker(env, (store) => store.write(rows), { open: outage.open, breaker });
    await down();
    for (let i = 0; i < 2; i++) await expect(write()).rejects.toMatchObject({ name: "SeriesUnavailable", breakerOpen: false });
    const started = Date.now();
    const open = await write().catch((error: unknown) => error);
    expect(Date.now() - started).toBeLessThan(200);
    expect(open).toBeInstanceOf(SeriesUnavailable);
    expect(open).toMatchObject({ breakerOpen: true, retryAfterSeconds: expect.any(Number) });
    // The sink turns it into a retriable error: the message is retried, not lost.
    const result = await deliver({ open: outage.open, breaker }, [metric(`${device}-2`, device, { level: 2 })], 1);
    expect(result.retryMessages).toEqual([{ msgId: "q0" }]);

    await up();
    await new Promise((resolve) => setTimeout(resolve, 1600));
    expect(await write()).toBe(1);
    expect(await write()).toBe(0);
  });

  it("answers the query API 503 with Retry-After after 3 attempts, in bounded time, and 200 once the database is back", async () => {
    const device = uniqueId("api");
    const url = `/v1/series?metric=level&device=${device}&bucket=raw`;
    expect((await call(url, { headers: ADMIN })).status).toBe(200);
    const log = { calls: 0, closedNow: [] as boolean[] };
    const failing = () =>
      readWithRetries(env, (store) => store.latest({ device }), {
        open: () => brokenStore("error", log),
        breaker: new SeriesBreaker(settings),
      });
    await expect(failing()).rejects.toBeInstanceOf(SeriesUnavailable);
    expect(log.calls).toBe(3);

    await down();
    const started = Date.now();
    let res: Response;
    if (backend === "postgres") {
      res = await call(url, { headers: ADMIN });
      // Three real attempts, each refused, not a breaker that was open already.
      expect((await json<{ error: { message: string } }>(res.clone())).error.message).toContain("failed (read)");
    } else {
      // D1 cannot be stopped: fail the isolate's own breaker with the injected store, then ask.
      for (let i = 0; i < 5; i++) await writeWithBreaker(env, (s) => s.write([]), { open: outage.open }).catch(() => {});
      expect(breakerFor(env).policy.state).toBe(1);
      res = await call(url, { headers: ADMIN });
    }
    expect(res.status).toBe(503);
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(await json(res)).toMatchObject({ error: { code: "unavailable" } });
    expect(Date.now() - started).toBeLessThan(3 * 3000 + 1000 + 2000);

    await up();
    resetBreakers();
    expect((await call(url, { headers: ADMIN })).status).toBe(200);
  });

  it("cuts a write that gets no answer in time, and its retry stores each reading once even if the first one landed late", async () => {
    const device = uniqueId("slow");
    const rows = rowsOf(metric(`${device}-1`, device, { temperature: { value: 21, unit: "°C" }, humidity: 40 }));
    const breaker = new SeriesBreaker({ failures: 100, cooldownMs: 1000, timeoutMs: 400 });
    const log = { calls: 0, closedNow: [] as boolean[] };
    let release = () => {};
    let locked: Promise<unknown> = Promise.resolve();
    let open: CallOptions["open"] = () => brokenStore("hang", log);
    const hyperdrive = env.HYPERDRIVE;
    const holder = hyperdrive
      ? postgres(hyperdrive.connectionString, withWorkerdSocket({ max: 1, fetch_types: false, onnotice: () => {} }))
      : undefined;
    if (holder) {
      // A real stall: another session holds a lock that blocks every insert into readings.
      open = undefined;
      let holding = () => {};
      const held = new Promise<void>((resolve) => {
        holding = resolve;
      });
      locked = holder.begin(async (tx) => {
        await tx`LOCK TABLE readings IN SHARE MODE`;
        holding();
        await new Promise<void>((resolve) => {
          release = resolve;
        });
      });
      await held;
    }
    const started = Date.now();
    const error = await writeWithBreaker(env, (store) => store.write(rows), { open, breaker }).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(error).toBeInstanceOf(SeriesUnavailable);
    expect((error as Error).message).toContain("no answer within 400 ms");
    if (!holder) expect(log.closedNow).toEqual([true]);

    release();
    await locked;
    await holder?.end();
    // The redelivery: whether or not the cut-off insert committed once the lock was gone, each
    // reading is there exactly once afterwards.
    await writeWithBreaker(env, (store) => store.write(rows), { breaker });
    expect(await rowsPerMessage(device)).toEqual({ [`${device}-1`]: 2 });
  });
});
