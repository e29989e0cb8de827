/**
 * GET /metrics on the local edge (a real `wrangler dev`): protected by METRICS_TOKEN or an admin
 * token, and after real traffic — accepted and rejected telemetry through the queues — its text
 * parses with parse-prometheus-text-format (prom2json's model) into the families docs/metrics.md
 * lists, with sane histograms.
 */
import parsePrometheusTextFormat, { type PromFamily } from "parse-prometheus-text-format";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalEdge, startLocalEdge } from "../../scripts/lib/local-edge.ts";

let edge: LocalEdge;

beforeAll(async () => {
  // Flush after every request, so the test sees its own traffic at once.
  edge = await startLocalEdge({ vars: { METRICS_FLUSH_SECONDS: "0", LOG_LEVEL: "debug" } });
});

afterAll(async () => {
  await edge?.stop();
});

async function scrape(token = edge.metricsToken): Promise<{ status: number; type: string | null; text: string }> {
  const res = await fetch(`${edge.url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, type: res.headers.get("content-type"), text: await res.text() };
}

function family(families: PromFamily[], name: string): PromFamily {
  const found = families.find((f) => f.name === name);
  if (!found) throw new Error(`no family ${name} in /metrics: ${families.map((f) => f.name).join(", ")}`);
  return found;
}

const value = (f: PromFamily, labels: Record<string, string>) =>
  f.metrics.filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v)).reduce((sum, m) => sum + Number(m.value), 0);

/** Each label set of a histogram: its buckets in exposition order, _sum and _count. */
function histogramSeries(text: string, name: string) {
  const out = new Map<string, { buckets: [number, number][]; sum: number; count: number }>();
  const at = (labels: string) => {
    const found = out.get(labels) ?? { buckets: [], sum: Number.NaN, count: Number.NaN };
    out.set(labels, found);
    return found;
  };
  for (const line of text.split("\n")) {
    const m = new RegExp(`^${name}_(bucket|sum|count)(?:\\{(.*)\\})? (\\S+)$`).exec(line);
    if (!m) continue;
    const [, kind, labels = "", value] = m;
    if (kind === "bucket") {
      const le = /le="([^"]*)"/.exec(labels)?.[1] ?? "";
      at(labels.replace(/,?le="[^"]*",?/, (s) => (s.startsWith(",") && s.endsWith(",") ? "," : ""))).buckets.push([
        le === "+Inf" ? Number.POSITIVE_INFINITY : Number(le),
        Number(value),
      ]);
    } else at(labels)[kind as "sum" | "count"] = Number(value);
  }
  return out;
}

describe("GET /metrics", () => {
  it("answers only the metrics token or an admin: 401 without, 403 for a viewer", async () => {
    expect((await fetch(`${edge.url}/metrics`)).status).toBe(401);
    expect((await scrape("wrong-token")).status).toBe(401);
    const issued = await edge.admin<{ refresh_token: string }>("POST", "/v1/auth/token", {
      grant_type: "issue",
      sub: "viewer",
      role: "viewer",
    });
    const access = await fetch(`${edge.url}/v1/auth/token`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ grant_type: "refresh_token", refresh_token: issued.body.refresh_token }),
    });
    const { access_token } = (await access.json()) as { access_token: string };
    expect((await scrape(access_token)).status).toBe(403);
    expect((await scrape(edge.adminToken)).status).toBe(200);
    const ok = await scrape();
    expect(ok.status).toBe(200);
    expect(ok.type).toBe("text/plain; version=0.0.4; charset=utf-8");
  });

  it("counts ingest, rejections, routing, twin and sink latency, devices and dead letters, in Prometheus text", async () => {
    const id = `metrics-thermo-${Date.now().toString(36)}`;
    const created = await edge.admin<{ token: string }>("POST", "/v1/devices", { id, type: "temperature", room: "metrics-lab" });
    expect(created.status).toBe(201);
    const res = await fetch(`${edge.url}/v1/telemetry`, {
      method: "POST",
      headers: { authorization: `Bearer ${created.body.token}`, "content-type": "application/json" },
      body: JSON.stringify([{ payload: { temperature: 21 } }, { payload: { temperature: "warm" } }, { payload: { temperature: 22 } }]),
    });
    expect(res.status).toBe(202);

    // The consumers run after the answer: wait until the temperature queue's sink has counted.
    let families: PromFamily[] = [];
    let text = "";
    const deadline = Date.now() + 30_000;
    for (;;) {
      text = (await scrape()).text;
      families = parsePrometheusTextFormat(text);
      const sink = families.find((f) => f.name === "edgemesh_sink_messages_total");
      if (sink && value(sink, { queue: "sensors.temperature", outcome: "delivered" }) >= 2) break;
      if (Date.now() > deadline) throw new Error(`the sink never counted: ${JSON.stringify(sink)}`);
      await new Promise((r) => setTimeout(r, 300));
    }

    const names = families.map((f) => f.name);
    expect(new Set(names).size).toBe(names.length); // each family once
    expect(value(family(families, "edgemesh_ingest_messages_total"), { outcome: "accepted" })).toBeGreaterThanOrEqual(2);
    expect(value(family(families, "edgemesh_ingest_messages_total"), { outcome: "rejected" })).toBeGreaterThanOrEqual(1);
    expect(value(family(families, "edgemesh_ingest_rejections_total"), { code: "invalid_payload" })).toBeGreaterThanOrEqual(1);
    expect(value(family(families, "edgemesh_routed_messages_total"), { queue: "sensors.temperature" })).toBeGreaterThanOrEqual(2);
    // Billable operations, counted at the bindings (shared/billing.ts): the accepted readings were
    // sent to queues, delivered, stored in D1 and recorded in the twin's SQLite.
    const billable = family(families, "edgemesh_billable_ops_total");
    const ops = (kind: string) => value(billable, { kind, source: "app" });
    // The twins pack what shares a queue (issue 13): at least one queue message went out.
    expect(ops("queue_messages_sent")).toBeGreaterThanOrEqual(1);
    expect(ops("queue_write_ops")).toBeGreaterThanOrEqual(ops("queue_messages_sent"));
    expect(ops("queue_read_ops")).toBeGreaterThanOrEqual(1);
    expect(ops("d1_rows_written")).toBeGreaterThan(0);
    expect(ops("do_rows_written")).toBeGreaterThan(0);
    expect(ops("do_requests")).toBeGreaterThanOrEqual(1);
    expect(ops("worker_invocations")).toBeGreaterThanOrEqual(2);
    const since = Number(family(families, "edgemesh_billable_since_timestamp_seconds").metrics[0]?.value);
    expect(since).toBeGreaterThan(Date.now() / 1000 - 600);
    expect(since).toBeLessThanOrEqual(Date.now() / 1000);
    expect(
      family(families, "edgemesh_http_requests_total").metrics.some(
        (m) => m.labels?.route === "/v1/telemetry" && m.labels.status === "202",
      ),
    ).toBe(true);
    expect(
      family(families, "edgemesh_http_requests_total").metrics.some((m) => m.labels?.status === "401" && m.labels.code === "unauthorized"),
    ).toBe(true);

    // The parser folds a histogram's label sets into one (its known limit with labelled
    // histograms), so each label set's buckets are checked from the sample lines themselves.
    for (const name of [
      "edgemesh_ingest_duration_seconds",
      "edgemesh_twin_duration_seconds",
      "edgemesh_routing_lag_seconds",
      "edgemesh_sink_duration_seconds",
    ]) {
      expect(family(families, name).type, name).toBe("HISTOGRAM");
      const histograms = histogramSeries(text, name);
      expect(histograms.size, name).toBeGreaterThan(0);
      for (const [labels, h] of histograms) {
        expect(h.buckets.length, `${name}{${labels}}`).toBeGreaterThan(5);
        for (let i = 1; i < h.buckets.length; i++) expect(h.buckets[i]?.[1]).toBeGreaterThanOrEqual(h.buckets[i - 1]?.[1] ?? 0);
        expect(h.buckets.at(-1)?.[0]).toBe(Number.POSITIVE_INFINITY);
        expect(h.buckets.at(-1)?.[1]).toBe(h.count);
        expect(h.count).toBeGreaterThan(0);
        expect(h.sum).toBeGreaterThanOrEqual(0);
      }
    }
    expect([...histogramSeries(text, "edgemesh_sink_duration_seconds").keys()]).toContain('queue="sensors.temperature"');

    expect(value(family(families, "edgemesh_devices"), { kind: "device" })).toBeGreaterThanOrEqual(1);
    expect(family(families, "edgemesh_devices").type).toBe("GAUGE");
    expect(Number(family(families, "edgemesh_d1_size_bytes").metrics[0]?.value)).toBeGreaterThan(0);
    expect(family(families, "edgemesh_queue_messages_total").metrics.length).toBeGreaterThan(10);
    expect(family(families, "edgemesh_queue_backlog_estimate").type).toBe("GAUGE");
  });

  it("logs one JSON line per step of a message's path, each with its correlation id", async () => {
    const id = `log-thermo-${Date.now().toString(36)}`;
    const created = await edge.admin<{ token: string }>("POST", "/v1/devices", { id, type: "temperature", room: "log-lab" });
    const correlation = `flow-${Date.now().toString(36)}`;
    const res = await fetch(`${edge.url}/v1/telemetry`, {
      method: "POST",
      headers: { authorization: `Bearer ${created.body.token}`, "content-type": "application/json" },
      body: JSON.stringify({ id: `${correlation}-m1`, correlation_id: correlation, payload: { temperature: 20 } }),
    });
    expect(res.status).toBe(202);
    const flow = () =>
      edge
        .log()
        .split("\n")
        .map((line) => line.slice(line.indexOf("{")))
        .filter((line) => line.includes(correlation))
        .map((line) => JSON.parse(line) as { level: string; msg: string; correlation_id: string; message_id: string; queue?: string });
    const deadline = Date.now() + 30_000;
    while (!flow().some((l) => l.msg === "delivered" && l.queue === "sensors.temperature")) {
      if (Date.now() > deadline) throw new Error(`no delivered line for ${correlation}:\n${edge.log().slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 300));
    }
    const lines = flow();
    expect(lines.map((l) => l.msg)).toEqual(expect.arrayContaining(["routed", "delivered"]));
    // Messages derived from it (the transformer's) carry the same correlation id, their own ids.
    expect(lines.filter((l) => l.message_id === `${correlation}-m1`).map((l) => l.msg)).toEqual(
      expect.arrayContaining(["routed", "delivered"]),
    );
    for (const line of lines) {
      expect(line.correlation_id).toBe(correlation);
      expect(line.message_id).toMatch(/\S/);
      expect(line.level).toMatch(/^(debug|info|warn|error)$/);
    }
  });
});
