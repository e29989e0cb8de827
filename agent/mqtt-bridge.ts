/**
 * The LAN broker side (MQTT.js): a persistent session (MQTT 5, clean start off, a week's
 * expiry), so what arrives while the agent is away or before it acknowledged waits at the
 * broker. A QoS 1 publish is acknowledged only after it is in the outbox on disk
 * (`customHandleAcks`). With a full outbox under `backpressure` the agent leaves the broker
 * without acknowledging, and comes back once the uplink made room: the broker keeps everything
 * unacknowledged in the agent's persistent session and sends it again, in order. (Holding the
 * acknowledgement instead would stall MQTT.js's packet handling, pings included, until the broker
 * dropped the connection for keep alive.)
 */
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { filterMatches } from "../shared/topics.ts";
import type { AgentConfig } from "./config.ts";
import { type Conversion, convert, type LanMessage, withoutCredentials } from "./lan-message.ts";
import type { Logger } from "./log.ts";
import type { Outbox } from "./outbox.ts";
import type { Stats } from "./stats.ts";

/** A topic template with `{device}` as a whole level: its subscription filter, and the device of a topic. */
export class DeviceTopic {
  readonly filter: string;
  readonly #levels: string[];
  readonly template: string;
  constructor(template: string) {
    this.template = template;
    this.#levels = template.split("/");
    this.filter = this.#levels.map((l) => (l === "{device}" ? "+" : l)).join("/");
  }
  topicFor(device: string): string {
    return this.template.replaceAll("{device}", device);
  }
  deviceOf(topic: string): string | undefined {
    const parts = topic.split("/");
    if (parts.length !== this.#levels.length) return undefined;
    let device: string | undefined;
    for (let i = 0; i < parts.length; i++) {
      if (this.#levels[i] === "{device}") device = parts[i];
      else if (this.#levels[i] !== parts[i]) return undefined;
    }
    return device;
  }
}

export interface BridgeHandlers {
  availability(device: string, status: "online" | "offline"): void;
  result(device: string, payload: Buffer): void;
}

/**
 * A source with its own payloads on the same broker (Home Assistant's statestream): its filter is
 * subscribed, and its messages are converted by it instead of the rules, then take the same path
 * (unknown devices, the outbox, backpressure). `consumed`: taken, nothing to send (an attribute).
 */
export interface Translator {
  filter: string;
  qos: 0 | 1;
  translate(topic: string, raw: Buffer): Promise<Conversion | "consumed">;
}

/** The outbox is full under `backpressure`: the message stays with the broker. */
class OutboxFull extends Error {
  override name = "OutboxFull";
  readonly bytes: number;
  constructor(bytes: number) {
    super("the outbox is full");
    this.bytes = bytes;
  }
}

export class MqttBridge {
  client: MqttClient | undefined;
  readonly #known: Set<string> | undefined;
  readonly availabilityTopic: DeviceTopic | undefined;
  readonly resultTopic: DeviceTopic | undefined;
  readonly setTopic: DeviceTopic;
  /** Devices seen publishing, for the command loops when the config lists none. */
  readonly seenDevices = new Set<string>();
  onDevice: (device: string) => void = () => {};
  /** Every message taken into the outbox (for local consumers of the readings, e.g. a Home Assistant state keeper). */
  onMessage: (message: LanMessage) => void = () => {};
  /** Set before start(). */
  translators: Translator[] = [];
  #stopping = false;
  #paused = false;

  readonly config: AgentConfig;
  readonly agentId: string;
  readonly outbox: Outbox;
  readonly stats: Stats;
  readonly log: Logger;
  readonly handlers: BridgeHandlers;

  constructor(config: AgentConfig, agentId: string, outbox: Outbox, stats: Stats, log: Logger, handlers: BridgeHandlers) {
    this.config = config;
    this.agentId = agentId;
    this.outbox = outbox;
    this.stats = stats;
    this.log = log;
    this.handlers = handlers;
    this.#known = config.mqtt.devices ? new Set(config.mqtt.devices) : undefined;
    const t = config.mqtt.availability_topic;
    this.availabilityTopic = t ? new DeviceTopic(t) : undefined;
    this.resultTopic = config.mqtt.commands.result_topic ? new DeviceTopic(config.mqtt.commands.result_topic) : undefined;
    this.setTopic = new DeviceTopic(config.mqtt.commands.set_topic);
  }

  async start(): Promise<void> {
    const m = this.config.mqtt;
    const options: IClientOptions = {
      clientId: m.client_id,
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 7 * 86_400 },
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
      username: m.username,
      password: m.password_env ? process.env[m.password_env] : undefined,
      customHandleAcks: (topic, message, packet, done) => {
        this.#take(topic, message, packet.qos, Boolean(packet.dup)).then(
          () => done(0),
          (error) => {
            // Not acknowledged: the broker redelivers it on the next connection.
            if (error instanceof OutboxFull) return this.#pauseUntilRoom(error.bytes);
            this.stats.error("mqtt", error);
            this.log.error("message not stored; left unacknowledged at the broker", { topic, error: String(error) });
            this.client?.end(true, undefined, () => {
              if (!this.#stopping) this.client?.reconnect();
            });
          },
        );
      },
    };
    const client = mqtt.connect(m.url, options);
    this.client = client;
    client.on("connect", (connack) => {
      this.stats.mqttConnected = true;
      this.log.info("connected to the LAN broker", { url: withoutCredentials(m.url), session_present: connack.sessionPresent });
      // Retain Handling 1: retained messages only for a subscription the session did not hold
      // yet. Resubscribing on every reconnect must not take each retained state in again as a
      // new reading (with a new time, and a new id when it has none of its own).
      const filters: Record<string, { qos: 0 | 1; rh: 1 }> = {};
      for (const rule of m.rules) filters[rule.topic] = { qos: rule.qos, rh: 1 };
      if (this.availabilityTopic) filters[this.availabilityTopic.filter] = { qos: 1, rh: 1 };
      if (this.resultTopic) filters[this.resultTopic.filter] = { qos: 1, rh: 1 };
      for (const translator of this.translators) filters[translator.filter] = { qos: translator.qos, rh: 1 };
      client.subscribe(filters, (error) => {
        if (error) this.log.error("subscribe failed", { error: String(error) });
      });
    });
    client.on("close", () => {
      if (this.stats.mqttConnected) this.log.warn("LAN broker connection closed; reconnecting");
      this.stats.mqttConnected = false;
    });
    client.on("error", (error) => {
      this.stats.error("mqtt", error);
      this.log.warn("LAN broker error", { error: error.message });
    });
    client.on("message", (topic, message, packet) => {
      // QoS 1 and 2 went through customHandleAcks already; QoS 0 has no acknowledgement to hold.
      if (packet.qos === 0)
        this.#take(topic, message, 0, false).catch((error) => this.log.error("QoS 0 message lost", { topic, error: String(error) }));
    });
  }

  async #take(topic: string, raw: Buffer, qos: number, dup: boolean): Promise<void> {
    const availableDevice = this.availabilityTopic?.deviceOf(topic);
    if (availableDevice) {
      const text = raw.toString("utf8").trim();
      let state = text;
      try {
        const json = JSON.parse(text) as { state?: string };
        if (typeof json === "object" && json?.state) state = json.state;
      } catch {}
      if (state === "online" || state === "offline") this.handlers.availability(availableDevice, state);
      return;
    }
    const resultDevice = this.resultTopic?.deviceOf(topic);
    if (resultDevice) {
      this.handlers.result(resultDevice, raw);
      return;
    }
    this.stats.count("received");
    if (dup) this.stats.count("redelivered");
    const translator = this.translators.find((t) => filterMatches(t.filter, topic));
    const conversion = translator
      ? await translator.translate(topic, raw)
      : await convert(topic, raw, this.config.mqtt.rules, { agent: this.agentId, broker: this.config.mqtt.url });
    if (conversion === "consumed") return;
    if (!conversion.ok) {
      this.stats.count(conversion.reason);
      this.log.warn(conversion.reason === "unmapped" ? "no rule for topic" : "invalid payload", { topic, detail: conversion.detail });
      return;
    }
    const { message } = conversion;
    if (this.#known && !this.#known.has(message.device)) {
      if (this.stats.unknownDevice(message.device, "not in mqtt.devices"))
        this.log.warn("unknown device", { device: message.device, topic });
      return;
    }
    if (!this.seenDevices.has(message.device)) {
      this.seenDevices.add(message.device);
      this.onDevice(message.device);
    }
    const body = JSON.stringify(message);
    for (;;) {
      const outcome = this.outbox.add(message.id, message.device, body);
      if (outcome !== "full") {
        if (outcome === "added") {
          this.stats.count("queued");
          this.onMessage(message);
        }
        return;
      }
      if (qos === 0) {
        this.stats.count("dropped_qos0_full");
        return;
      }
      throw new OutboxFull(Buffer.byteLength(body));
    }
  }

  /** Backpressure: off the broker until the outbox has room for the message it refused, then back. */
  #pauseUntilRoom(bytes: number): void {
    if (this.#paused) return;
    this.#paused = true;
    this.stats.count("backpressure_pauses");
    this.log.warn("outbox full: intake paused; the broker keeps the messages until there is room", { depth: this.outbox.depth });
    this.client?.end(true, undefined, () => {
      const resume = () => {
        if (!this.#paused) return;
        off();
        clearInterval(poll);
        this.#paused = false;
        if (this.#stopping) return;
        this.log.info("outbox has room again: intake resumes");
        this.client?.reconnect();
      };
      const ready = () => !this.outbox.full(bytes) || this.#stopping;
      const off = this.outbox.onChange(() => ready() && resume());
      // The uplink's removals announce themselves; the poll covers a change made before this listener.
      const poll = setInterval(() => ready() && resume(), 1000);
    });
  }

  async publish(topic: string, payload: string, qos: 0 | 1 = 1, retain = false): Promise<void> {
    const client = this.client;
    if (!client?.connected) throw new Error("not connected to the LAN broker");
    await client.publishAsync(topic, payload, { qos, retain });
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    await this.client?.endAsync();
  }
}
