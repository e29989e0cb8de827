/**
 * One message the edge can never take must not stop the uplink: an edge with a small body limit
 * refuses a batch holding an oversize reading whole (413); the agent halves until that message
 * travels alone, drops it (counted, logged), and every other message arrives. A device id the edge
 * could not take is caught before the outbox.
 */
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningAgent } from "../../agent/agent.ts";
import { type LocalEdge, startLocalEdge } from "../../scripts/lib/local-edge.ts";
import { type Mosquitto, startMosquitto } from "../../scripts/lib/mosquitto.ts";
import {
  lanClient,
  meterReading,
  registerAgent,
  requireMosquitto,
  startSubscribedAgent,
  stopAll,
  twinOf,
  until,
  writeAgentConfig,
} from "./agent-fixtures.ts";

const haveMosquitto = requireMosquitto();
let edge: LocalEdge;
let broker: Mosquitto;
let agent: RunningAgent;
let lan: MqttClient;

beforeAll(async () => {
  if (!haveMosquitto) return;
  [edge, broker] = await Promise.all([startLocalEdge({ vars: { MAX_BODY_BYTES: "4096", MAX_MESSAGE_BYTES: "4096" } }), startMosquitto()]);
  const token = await registerAgent(edge, "limits-agent", ["lm1"]);
  const { config } = writeAgentConfig({ edgeUrl: edge.url, mqttUrl: broker.url, token, clientId: "limits-agent" });
  agent = await startSubscribedAgent(config);
  lan = await lanClient(broker.url);
});

afterAll(() => stopAll(agent, lan, edge, broker));

describe.runIf(haveMosquitto)("the uplink and the edge's limits", () => {
  it("drops the one message the edge refuses whole and delivers the rest", async () => {
    const base = Date.now() - 600_000;
    // 64 readings with long names and values: about 5 KB, over the edge's 4 KB body limit on its own.
    const huge = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`r${"x".repeat(56)}_${i}`, i + 0.123456789]));
    await lan.publishAsync("homelab/energy/lm1", meterReading(0, base), { qos: 1 });
    await lan.publishAsync("homelab/energy/lm1", JSON.stringify({ timestamp: new Date(base + 500).toISOString(), ...huge }), { qos: 1 });
    await lan.publishAsync(`homelab/energy/${"d".repeat(70)}`, meterReading(1, base), { qos: 1 });
    await lan.publishAsync("homelab/energy/lm1", meterReading(2, base), { qos: 1 });
    await until(
      () => (agent.stats.counters.rejected_by_edge >= 1 && agent.outbox.depth === 0 ? true : undefined),
      `the outbox drained (counters ${JSON.stringify(agent.stats.counters)}, depth ${agent.outbox.depth})`,
    );
    const twin = await twinOf(edge, "lm1");
    expect(twin.counters.accepted).toBe(2);
    expect(agent.stats.counters.rejected_by_edge).toBe(1);
    expect(agent.stats.counters.invalid).toBe(1);
  });
});
