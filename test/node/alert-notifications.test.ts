/**
 * Alert notifications end to end on the local edge (wrangler dev): a reading over a rule's
 * threshold raises an alert that reaches a webhook, ntfy and Home Assistant receiver — real HTTP
 * servers in this process. The webhook fails on purpose twice: the notifier's queue retries it
 * with backoff (2 s, then 8 s) and the alert records each channel's delivery.
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalEdge, startLocalEdge } from "../../scripts/lib/local-edge.ts";
import { until } from "../../scripts/lib/wait.ts";

interface Received {
  path: string;
  headers: IncomingMessage["headers"];
  body: string;
  status: number;
}

let edge: LocalEdge;
let receiver: Server;
let base = "";
const received: Received[] = [];
let webhookFailuresLeft = 2;

beforeAll(async () => {
  receiver = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk: Buffer) => {
      body += chunk.toString();
    });
    req.on("end", () => {
      const path = req.url ?? "";
      const status = path === "/hook" && webhookFailuresLeft-- > 0 ? 503 : 200;
      received.push({ path, headers: req.headers, body, status });
      res.writeHead(status, { "content-type": "application/json" }).end(status === 200 ? "{}" : '{"error":"on purpose"}');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  edge = await startLocalEdge({ vars: { NOTIFY_HA_TOKEN: "ha-long-lived-token" } });
});

afterAll(async () => {
  await edge?.stop();
  await new Promise((resolve) => receiver?.close(resolve));
});

interface AlertBody {
  id: string;
  status: string;
  deliveries: { channel: number; type: string; status: string; attempts: number }[];
}

describe("alert notifications against real receivers", () => {
  it("delivers to webhook (after two failures, retried from the queue), ntfy and Home Assistant", async () => {
    const id = `notify-${Date.now().toString(36)}`;
    const created = await edge.admin<{ token: string }>("POST", "/v1/devices", { id, type: "temperature", room: "lab" });
    expect(created.status).toBe(201);
    const rule = await edge.admin<{ rule: { id: string } }>("POST", "/api/monitoring/alert_rules", {
      name: "lab too hot",
      metric: "temperature",
      device: id,
      condition: { type: "threshold", op: "gt", value: 30 },
      severity: "critical",
      channels: [
        { type: "webhook", url: `${base}/hook` },
        { type: "ntfy", url: base, topic: "edgemesh-alerts" },
        { type: "home_assistant", url: `${base}/ha`, service: "mobile_app_phone", token_secret: "NOTIFY_HA_TOKEN" },
      ],
    });
    expect(rule.status).toBe(201);

    const sent = await fetch(`${edge.url}/v1/telemetry`, {
      method: "POST",
      headers: { authorization: `Bearer ${created.body.token}`, "content-type": "application/json" },
      body: JSON.stringify({ payload: { temperature: 42 } }),
    });
    expect(sent.status).toBe(202);

    const alert = await until(
      async () => {
        const { body } = await edge.admin<{ alerts: AlertBody[] }>("GET", `/api/monitoring/alerts?device=${id}`);
        const found = body.alerts[0];
        return found && found.deliveries.filter((d) => d.status === "delivered").length === 3 ? found : undefined;
      },
      "all three channels delivered",
      30_000,
      () => edge.log().slice(-3000),
    );
    expect(alert.status).toBe("active");
    const byType = Object.fromEntries(alert.deliveries.map((d) => [d.type, d]));
    expect(byType.webhook).toMatchObject({ status: "delivered", attempts: 3 });
    expect(byType.ntfy).toMatchObject({ status: "delivered", attempts: 1 });
    expect(byType.home_assistant).toMatchObject({ status: "delivered", attempts: 1 });

    // The webhook was tried three times; the channels that succeeded were not sent again.
    const hooks = received.filter((r) => r.path === "/hook");
    expect(hooks.map((r) => r.status)).toEqual([503, 503, 200]);
    expect(received.filter((r) => r.path === "/edgemesh-alerts")).toHaveLength(1);
    expect(received.filter((r) => r.path === "/ha/api/services/notify/mobile_app_phone")).toHaveLength(1);

    // Enriched: the room, the device's availability and its recent values.
    const hook = JSON.parse(hooks[2]?.body ?? "{}") as {
      alert: { id: string; value: number };
      context: { room: string; availability: string; recent: { value: number }[] };
    };
    expect(hook.alert).toMatchObject({ id: alert.id, value: 42 });
    expect(hook.context).toMatchObject({ room: "lab", availability: "online" });
    expect(hook.context.recent.map((r) => r.value)).toContain(42);

    const ntfy = received.find((r) => r.path === "/edgemesh-alerts");
    expect(ntfy?.headers.priority).toBe("5");
    expect(ntfy?.headers.title).toContain("lab too hot");
    const ha = received.find((r) => r.path.startsWith("/ha/"));
    expect(ha?.headers.authorization).toBe("Bearer ha-long-lived-token");
    expect(JSON.parse(ha?.body ?? "{}")).toMatchObject({ title: expect.stringContaining("lab too hot"), data: { alert_id: alert.id } });
  });
});
