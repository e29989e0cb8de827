/** The agent: outbox, LAN broker, uplink, downlink and health endpoint, started and stopped together. */
import type { Server } from "node:http";
import { AdapterSet } from "./adapters.ts";
import { type AgentConfig, adapterSpecs, readToken } from "./config.ts";
import { Downlink } from "./downlink.ts";
import { EdgeClient } from "./edge-client.ts";
import { startHealthServer, statusReport } from "./health.ts";
import { HomeAssistantLink } from "./homeassistant.ts";
import { KafkaBridge } from "./kafka.ts";
import { withoutCredentials } from "./lan-message.ts";
import { createLogger, type Logger } from "./log.ts";
import { MqttBridge } from "./mqtt-bridge.ts";
import { Outbox } from "./outbox.ts";
import { Stats } from "./stats.ts";
import { Uplink } from "./uplink.ts";
import { WakeStream } from "./wake-stream.ts";

export interface RunningAgent {
  readonly id: string;
  readonly outbox: Outbox;
  readonly stats: Stats;
  readonly bridge: MqttBridge;
  readonly uplink: Uplink;
  readonly downlink: Downlink;
  readonly kafka: KafkaBridge | undefined;
  readonly adapters: AdapterSet | undefined;
  readonly healthUrl: string;
  stop(): Promise<void>;
}

export async function startAgent(config: AgentConfig, options: { log?: Logger; token?: string } = {}): Promise<RunningAgent> {
  const log = options.log ?? createLogger(config.log.level);
  const token = options.token ?? readToken(config);
  const started = Date.now();
  const stats = new Stats();
  const outbox = new Outbox({
    path: config.outbox.path,
    maxMessages: config.outbox.max_messages,
    maxBytes: config.outbox.max_bytes,
    whenFull: config.outbox.when_full,
    sync: config.outbox.sync,
  });
  const edge = new EdgeClient(config.edge.url, token, { gzip: config.edge.gzip, timeoutMs: config.edge.timeout_s * 1000 });
  const retry = { retryInitialMs: config.edge.retry.initial_ms, retryMaxMs: config.edge.retry.max_ms };
  const uplink = new Uplink(outbox, edge, stats, log, { batchMax: config.edge.batch_max, ...retry });
  let downlink: Downlink | undefined;
  let homeAssistant: HomeAssistantLink | undefined;
  const bridge = new MqttBridge(config, edge.agentId, outbox, stats, log, {
    availability: (device, status) => {
      void downlink?.presence(device, status);
      homeAssistant?.availability(device, status);
    },
    result: (device, payload) => downlink?.result(device, payload),
  });
  downlink = new Downlink(edge, bridge, stats, log, {
    payload: config.mqtt.commands.payload,
    desired: config.mqtt.commands.desired,
    resultTimeoutS: config.mqtt.commands.result_timeout_s,
    waitS: 25,
    ...retry,
  });
  const commands = downlink;
  const specs = adapterSpecs(config);
  const adapters =
    specs.length > 0
      ? new AdapterSet(specs, {
          agentId: edge.agentId,
          allow: config.adapters?.provision?.allow,
          provision: (device) => edge.provision(device),
          availability: (device, status) => {
            void commands.presence(device, status);
            homeAssistant?.availability(device, status);
          },
          log,
        })
      : undefined;
  if (adapters) {
    bridge.translators = adapters.translators();
    commands.adapters = adapters;
  }
  if (config.homeassistant) {
    const link = new HomeAssistantLink(config.homeassistant, bridge, edge.agentId, log, undefined, {
      controlsOf: (device, readings) => adapters?.controlsOf(device, readings) ?? [],
      issue: (device, command) => edge.issueCommand(device, command),
      edgeDevices: () => edge.homeAssistantDevices(),
    });
    homeAssistant = link;
    bridge.translators = [...bridge.translators, ...link.translators()];
    bridge.onMessage = (message) => link.onMessage(message);
  }
  bridge.onDevice = (device) => commands.watch(device);
  const stream = new WakeStream(
    config.edge.url,
    token,
    {
      connected: () => commands.setStreaming(true),
      disconnected: () => commands.setStreaming(false),
      wake: (device) => commands.wake(device),
    },
    log,
    retry,
  );
  const kafka = config.kafka ? new KafkaBridge(config.kafka, edge.agentId, outbox, stats, log) : undefined;
  if (kafka) {
    uplink.onAcknowledged = (ids) => kafka.acknowledged(ids);
    commands.onCommand = (device, command) => kafka.command(device, command);
  }

  if (outbox.depth > 0) log.info("outbox holds messages from before; replaying them first", { depth: outbox.depth });
  uplink.start();
  await bridge.start();
  await kafka?.start();
  commands.start(config.mqtt.devices ?? []);
  stream.start();
  homeAssistant?.startEdgeDevices();
  let health: Server | undefined;
  try {
    health = await startHealthServer(config.health.listen, () =>
      statusReport({
        agent: edge.agentId,
        started,
        mqttUrl: withoutCredentials(config.mqtt.url),
        edgeUrl: config.edge.url,
        outboxPath: config.outbox.path,
        outbox,
        stats,
        commandDevices: commands.devices,
      }),
    );
  } catch (error) {
    log.error("health endpoint not started", { listen: config.health.listen, error: String(error) });
  }
  const address = health?.address();
  const healthUrl = address && typeof address === "object" ? `http://${config.health.listen.replace(/:\d+$/, "")}:${address.port}` : "";
  log.info("agent started", { agent: edge.agentId, edge: config.edge.url, mqtt: withoutCredentials(config.mqtt.url), health: healthUrl });

  return {
    id: edge.agentId,
    outbox,
    stats,
    bridge,
    uplink,
    downlink: commands,
    kafka,
    adapters,
    healthUrl,
    async stop() {
      stream.stop();
      homeAssistant?.stop();
      await bridge.stop();
      await kafka?.stop();
      await commands.stop();
      await uplink.stop();
      await new Promise<void>((resolve) => (health ? health.close(() => resolve()) : resolve()));
      outbox.close();
      log.info("agent stopped");
    },
  };
}
