/** The message repository's lean rows: one row a consumer batch (per-message rows for failures), D1 rows written counted. */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { historyStatements, recordSteps, type StepRecord } from "../../queues/history";
import type { Envelope } from "../../shared/schemas/message";
import { ADMIN, call, json, metricEnvelope, uniqueId } from "./helpers";

const envelope = (id: string, correlation = id): Envelope => metricEnvelope(id, { correlation, source: "history-tester" });

async function rowsWritten(steps: StepRecord[]): Promise<number> {
  const results = await env.DB.batch(historyStatements(env.DB, steps));
  return results.reduce((n, r) => n + (r.meta.rows_written ?? 0), 0);
}

interface Answer {
  messages: { id: string; correlation_id: string; steps: { queue: string; status: string; at: string; detail: string | null }[] }[];
}

async function history(query: string): Promise<Answer> {
  return json<Answer>(await call(`/v1/messages?${query}`, { headers: ADMIN }));
}

describe("message history", () => {
  it("writes 1 D1 row for a batch's happy steps on a queue, and per-message rows only for the unhappy ones", async () => {
    const messages = Array.from({ length: 50 }, () => envelope(uniqueId("h")));
    const first = await rowsWritten(
      messages.flatMap((message) => [
        { message, queue: "metrics.sensors", step: "delivered" as const },
        { message, queue: "metrics.sensors", step: "stored" as const, detail: "1 reading" },
      ]),
    );
    expect(first).toBe(1);
    await new Promise((r) => setTimeout(r, 5));
    const later = await rowsWritten(messages.map((message) => ({ message, queue: "archive.metrics", step: "delivered" as const })));
    expect(later).toBe(1);
    // A retry is the message's own: its row (2 rows written with its index), for these 2 of the 50.
    await new Promise((r) => setTimeout(r, 5));
    const failed = messages
      .slice(0, 2)
      .map((message) => ({ message, queue: "archive.metrics", step: "retried" as const, detail: "r2 down" }));
    expect(await rowsWritten(failed)).toBe(4);
    const answer = await history(`id=${messages[0]?.id}`);
    expect(answer.messages[0]?.steps.map((s) => [s.queue, s.status])).toEqual([
      ["metrics.sensors", "delivered"],
      ["metrics.sensors", "stored"],
      ["archive.metrics", "delivered"],
      ["archive.metrics", "retried"],
    ]);
    expect((await history(`id=${messages[9]?.id}`)).messages[0]?.steps.map((s) => s.status)).toEqual(["delivered", "stored", "delivered"]);
  });

  it("records a redelivered step once, with its newest detail", async () => {
    const message = envelope(uniqueId("h"));
    await recordSteps(env, [{ message, queue: "metrics.system", step: "retried", detail: "attempt 1" }]);
    await recordSteps(env, [{ message, queue: "metrics.system", step: "retried", detail: "attempt 2" }]);
    await recordSteps(env, [{ message, queue: "metrics.system", step: "delivered" }]);
    const steps = (await history(`id=${message.id}`)).messages[0]?.steps;
    expect(steps?.map((s) => [s.status, s.detail])).toEqual([
      ["retried", "attempt 2"],
      ["delivered", null],
    ]);
  });

  it("finds a flow by correlation id, whether the id is the message's own or another's", async () => {
    const flow = uniqueId("flow");
    const head = envelope(flow);
    const follower = envelope(uniqueId("h"), flow);
    const stranger = envelope(uniqueId("h"));
    await recordSteps(
      env,
      [head, follower, stranger].map((message) => ({ message, queue: "metrics.system", step: "delivered" as const })),
    );
    const found = await history(`correlation_id=${flow}`);
    expect(found.messages.map((m) => m.id).sort()).toEqual([head.id, follower.id].sort());
    expect((await history(`id=${stranger.id}`)).messages).toHaveLength(1);
    expect((await history("device=history-tester&limit=500")).messages.map((m) => m.id)).toContain(stranger.id);
  });
});
