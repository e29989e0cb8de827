/**
 * The local health endpoint: `GET /status` (JSON: connections, outbox depth, rates, errors,
 * unknown devices), `GET /metrics` (Prometheus text), `GET /healthz` (200 while both sides are
 * connected, else 503). Bound to the loopback address by default.
 */
import { createServer, type Server } from "node:http";
import type { Outbox } from "./outbox.ts";
import type { Stats } from "./stats.ts";

export interface StatusReport {
  agent: string;
  version: string;
  uptime_s: number;
  mqtt: { connected: boolean; url: string };
  edge: { url: string; reachable: boolean | null; last_ok: string | null; last_error: string | null };
  /** How commands reach the agent: the wake-up WebSocket, or long polls while it is down. */
  downlink: "websocket" | "long_poll";
  outbox: { depth: number; bytes: number; oldest_age_s: number; dropped: number; path: string };
  rates: { received_per_s: number; forwarded_per_s: number };
  counters: Record<string, number>;
  memory: { rss_bytes: number; heap_used_bytes: number };
  command_devices: string[];
  unknown_devices: Record<string, { last_seen: string; reason: string; count: number }>;
  recent_errors: { at: string; where: string; error: string }[];
}

export function statusReport(input: {
  agent: string;
  started: number;
  mqttUrl: string;
  edgeUrl: string;
  outboxPath: string;
  outbox: Outbox;
  stats: Stats;
  commandDevices: string[];
}): StatusReport {
  const { stats, outbox } = input;
  const memory = process.memoryUsage();
  return {
    agent: input.agent,
    version: "0.1.0",
    uptime_s: Math.round((Date.now() - input.started) / 1000),
    mqtt: { connected: stats.mqttConnected, url: input.mqttUrl },
    edge: { url: input.edgeUrl, ...stats.edge },
    downlink: stats.streamConnected ? "websocket" : "long_poll",
    outbox: {
      depth: outbox.depth,
      bytes: outbox.bytes,
      oldest_age_s: Math.round(outbox.oldestAgeSeconds()),
      dropped: outbox.dropped,
      path: input.outboxPath,
    },
    rates: { received_per_s: round(stats.received.perSecond()), forwarded_per_s: round(stats.forwarded.perSecond()) },
    counters: { ...stats.counters },
    memory: { rss_bytes: memory.rss, heap_used_bytes: memory.heapUsed },
    command_devices: input.commandDevices,
    unknown_devices: Object.fromEntries(stats.unknownDevices),
    recent_errors: [...stats.recentErrors],
  };
}

const round = (n: number) => Math.round(n * 100) / 100;

function prometheus(report: StatusReport): string {
  const lines = [
    `edgemesh_agent_outbox_depth ${report.outbox.depth}`,
    `edgemesh_agent_outbox_bytes ${report.outbox.bytes}`,
    `edgemesh_agent_outbox_oldest_age_seconds ${report.outbox.oldest_age_s}`,
    `edgemesh_agent_outbox_dropped_total ${report.outbox.dropped}`,
    `edgemesh_agent_mqtt_connected ${report.mqtt.connected ? 1 : 0}`,
    `edgemesh_agent_edge_reachable ${report.edge.reachable ? 1 : 0}`,
    `edgemesh_agent_downlink_websocket ${report.downlink === "websocket" ? 1 : 0}`,
    ...Object.entries(report.counters).map(([k, v]) => `edgemesh_agent_${k}_total ${v}`),
  ];
  return `${lines.join("\n")}\n`;
}

export function startHealthServer(listen: string, report: () => StatusReport): Promise<Server> {
  const colon = listen.lastIndexOf(":");
  const host = listen.slice(0, colon).replace(/^\[|\]$/g, "");
  const port = Number(listen.slice(colon + 1));
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET") {
      res.writeHead(405).end();
      return;
    }
    const current = report();
    if (path === "/status") {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(current, null, 2));
    } else if (path === "/metrics") {
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(prometheus(current));
    } else if (path === "/healthz") {
      const ok = current.mqtt.connected && current.edge.reachable !== false;
      res.writeHead(ok ? 200 : 503, { "content-type": "application/json" }).end(JSON.stringify({ ok }));
    } else res.writeHead(404).end();
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve(server));
  });
}

/** The `status` command's readable summary. */
export function formatStatus(s: StatusReport): string {
  const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
  const lines = [
    `agent ${s.agent}, up ${s.uptime_s} s, rss ${mib(s.memory.rss_bytes)}`,
    `LAN broker  ${s.mqtt.connected ? "connected" : "DISCONNECTED"}  ${s.mqtt.url}`,
    `edge        ${s.edge.reachable === null ? "not tried yet" : s.edge.reachable ? "reachable" : "UNREACHABLE"}  ${s.edge.url}` +
      (s.edge.last_ok ? `  (last ok ${s.edge.last_ok})` : ""),
    `commands    ${s.downlink === "websocket" ? "woken over the WebSocket" : "long-polled (WebSocket down)"}, ${s.command_devices.length} devices`,
    `outbox      ${s.outbox.depth} waiting, ${mib(s.outbox.bytes)}, oldest ${s.outbox.oldest_age_s} s, dropped ${s.outbox.dropped}`,
    `rates       ${s.rates.received_per_s}/s received, ${s.rates.forwarded_per_s}/s forwarded (last minute)`,
    `counters    ${Object.entries(s.counters)
      .filter(([, v]) => v > 0)
      .map(([k, v]) => `${k}=${v}`)
      .join(" ")}`,
  ];
  if (s.edge.last_error) lines.push(`last edge error: ${s.edge.last_error}`);
  const unknown = Object.entries(s.unknown_devices);
  if (unknown.length) lines.push(`unknown devices: ${unknown.map(([d, u]) => `${d} (${u.count}×, ${u.reason})`).join(", ")}`);
  for (const e of s.recent_errors.slice(-5)) lines.push(`error ${e.at} [${e.where}] ${e.error}`);
  return lines.join("\n");
}
