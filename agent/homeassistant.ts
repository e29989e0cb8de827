/**
 * The agent's side of Home Assistant (docs/homeassistant.md): discovery configs, state and
 * availability for every device it bridges, published retained on the LAN broker; Home
 * Assistant's statestream and eventstream taken in as readings and events of edgemesh devices.
 */
import type { AgentConfig } from "./config.ts";
import { EdgeError } from "./edge-client.ts";
import { ControlError, commandFromHomeAssistant, controlKey, controlMessages, type HaControl } from "./ha-controls.ts";
import { discoveryMessages, haDeviceOf, haTopics, type MqttMessage, StateKeeper, stateMessage } from "./ha-discovery.ts";
import { eventFromHomeAssistant, StatestreamReader } from "./ha-streams.ts";
import { type Conversion, convertPayload, type LanMessage } from "./lan-message.ts";
import type { Logger } from "./log.ts";
import type { MqttBridge, Translator } from "./mqtt-bridge.ts";

type HaConfig = NonNullable<AgentConfig["homeassistant"]>;

/** What the link needs of the rest of the agent for controls: a device's controls, and a way to issue a command. */
export interface ControlHooks {
  /** The controls of a device beyond the config's (its adapter's mapping file), given its readings. */
  controlsOf(device: string, readings: readonly string[]): HaControl[];
  issue(device: string, command: { command: string; parameters: Record<string, unknown> }): Promise<unknown>;
  /** Edge-native devices shown in Home Assistant through this agent (GET /v1/agent/homeassistant/devices). */
  edgeDevices?(): Promise<EdgeNativeDevice[]>;
}

export interface EdgeNativeDevice {
  id: string;
  name?: string;
  type: string;
  room?: string;
  availability: string;
  readings: Record<string, unknown>;
}

export class HomeAssistantLink {
  readonly #keeper = new StateKeeper();
  readonly #announced = new Set<string>();
  /** Devices whose discovery configs did not reach the broker: sent again with their next message. */
  readonly #undiscovered = new Set<string>();
  readonly #config: HaConfig;
  readonly #bridge: MqttBridge;
  readonly #agentId: string;
  readonly #log: Logger;
  readonly #version: string;

  readonly #hooks: ControlHooks | undefined;
  #poll: ReturnType<typeof setInterval> | undefined;
  /** The controls announced per device, by key: a command topic names one. */
  readonly #controls = new Map<string, Map<string, HaControl>>();

  constructor(config: HaConfig, bridge: MqttBridge, agentId: string, log: Logger, version = "0.1.0", hooks?: ControlHooks) {
    this.#hooks = hooks;
    this.#config = config;
    this.#bridge = bridge;
    this.#agentId = agentId;
    this.#log = log;
    this.#version = version;
  }

  /** The statestream and eventstream sources, for the bridge to subscribe to. */
  translators(): Translator[] {
    const translators: Translator[] = [];
    const source = { agent: this.#agentId, source: "home_assistant" };
    const { statestream, eventstream } = this.#config;
    if (statestream) {
      const reader = new StatestreamReader(statestream.base_topic, statestream.entities);
      translators.push({
        filter: reader.filter,
        qos: 1,
        translate: async (topic, raw): Promise<Conversion | "consumed"> => {
          const outcome = reader.read(topic, raw.toString("utf8"));
          if (outcome.kind === "attribute") return "consumed";
          if (outcome.kind === "skipped") {
            // Unmapped entities are the common case (statestream publishes every entity): not errors.
            if (outcome.reason !== "unmapped_entity") this.#log.debug("statestream message skipped", { topic, reason: outcome.reason });
            return "consumed";
          }
          const route = { device: outcome.device, routingKey: outcome.routingKey, type: "telemetry" as const, origin: topic };
          return convertPayload(Buffer.from(JSON.stringify(outcome.item.payload)), route, { ...source, source_topic: topic.slice(0, 256) });
        },
      });
    }
    if (eventstream) {
      translators.push({
        filter: eventstream.topic,
        qos: 1,
        translate: async (topic, raw): Promise<Conversion | "consumed"> => {
          const event = eventFromHomeAssistant(raw.toString("utf8"));
          if (!event)
            return { ok: false, reason: "invalid", device: eventstream.device, detail: "not a Home Assistant eventstream message" };
          const eventType = String(event.payload.event_type);
          const route = {
            device: eventstream.device,
            routingKey: `home.${eventstream.room}.${eventstream.device}.${eventType}`,
            type: "event" as const,
            origin: topic,
          };
          return convertPayload(Buffer.from(JSON.stringify(event.payload)), route, { ...source, source_topic: topic.slice(0, 256) });
        },
      });
    }
    if (this.#config.discovery && this.#hooks) {
      const hooks = this.#hooks;
      const base = this.#config.state_base;
      translators.push({
        filter: `${base}/+/+/set`,
        qos: 1,
        translate: async (topic, raw): Promise<"consumed"> => {
          const [, device = "", key = ""] = topic.slice(base.length).split("/");
          const control = this.#controls.get(device)?.get(key);
          if (!control) {
            this.#log.warn("Home Assistant command for no control the agent announced", { topic });
            return "consumed";
          }
          try {
            const command = commandFromHomeAssistant(control, raw.toString("utf8"));
            await hooks.issue(device, command);
            this.#log.info("Home Assistant command sent to the edge", { device, command: command.command });
          } catch (error) {
            // A bad payload or a refusal is said and dropped; an edge that cannot be reached is thrown,
            // so a QoS 1 command stays with the broker and comes again.
            if (!(error instanceof ControlError) && !(error instanceof EdgeError && !error.retriable)) throw error;
            this.#log.warn("Home Assistant command not taken", { topic, error: error.message });
          }
          return "consumed";
        },
      });
    }
    return translators;
  }

  /** The config's controls of a device and its adapter's, by key. */
  #controlsOf(device: string, readings: readonly string[]): HaControl[] {
    const own = this.#config.controls.filter((c) => c.device === device);
    const keys = new Set(own.map(controlKey));
    const fromAdapter = (this.#hooks?.controlsOf(device, readings) ?? []).filter((c) => !keys.has(controlKey(c)));
    return [...own, ...fromAdapter];
  }

  /** A bridged message was taken: its device's entities and state follow it into Home Assistant. */
  onMessage(message: LanMessage): void {
    if (!this.#config.discovery || message.type === "event") return;
    const inferred = typeof message.metadata.inferred_type === "string" ? message.metadata.inferred_type : "sensor";
    const [, type = inferred, room] = (message.routing_key ?? "").split(".");
    this.#show({ id: message.device, type, ...(room && { room }) }, message.payload);
  }

  /** A device's readings into Home Assistant: new entities when a reading is new, then its state. */
  #show(device: { id: string; type: string; room?: string; name?: string }, readings: Record<string, unknown>, online = true): void {
    const { state, units, booleans, newReadings } = this.#keeper.update(device.id, readings);
    const out: MqttMessage[] = [];
    if (newReadings || this.#undiscovered.has(device.id)) {
      this.#undiscovered.delete(device.id);
      const bridged = { ...device, readings: units, booleans };
      const options = {
        prefix: this.#config.discovery_prefix,
        stateBase: this.#config.state_base,
        via: this.#agentId,
        version: this.#version,
      };
      const controls = this.#controlsOf(device.id, Object.keys(units));
      this.#controls.set(device.id, new Map(controls.map((c) => [controlKey(c), c])));
      out.push(
        ...discoveryMessages(
          bridged,
          options,
          controls.flatMap((c) => (c.reading ? [c.reading] : [])),
        ),
        ...controlMessages(bridged, controls, {
          prefix: options.prefix,
          stateBase: options.stateBase,
          haDevice: haDeviceOf(bridged, options),
          version: options.version,
        }),
      );
    }
    if (!this.#announced.has(device.id)) {
      // Entities with an availability topic stay unavailable until it says online: a device that
      // publishes is online until its own availability topic or last will says otherwise.
      this.#announced.add(device.id);
      out.push({ topic: haTopics(device.id, this.#config.state_base).availability, payload: online ? "online" : "offline", retain: true });
    }
    out.push(stateMessage(device.id, state, this.#config.state_base));
    this.#publish(out, device.id);
  }

  /**
   * Edge-native devices (connected to the edge, not through the agent) that an admin shows in
   * Home Assistant through this agent: read from the edge every `edge_poll_s`; a change of their
   * readings or availability is published like a bridged device's.
   */
  startEdgeDevices(): void {
    const fetch = this.#hooks?.edgeDevices;
    if (!this.#config.discovery || !this.#config.edge_devices || !fetch || this.#poll) return;
    const seen = new Map<string, string>();
    const round = async () => {
      try {
        for (const device of await fetch()) {
          const fingerprint = JSON.stringify([device.availability, device.readings]);
          if (seen.get(device.id) === fingerprint) continue;
          seen.set(device.id, fingerprint);
          const { readings, availability, ...identity } = device;
          this.#show(identity, readings, availability === "online");
          this.availability(device.id, availability === "online" ? "online" : "offline");
        }
      } catch (error) {
        this.#log.warn("edge-native devices for Home Assistant not read; trying again", { error: String(error) });
      }
    };
    void round();
    this.#poll = setInterval(() => void round(), this.#config.edge_poll_s * 1000);
  }

  stop(): void {
    if (this.#poll) clearInterval(this.#poll);
    this.#poll = undefined;
  }

  /** The device's own availability (its `…/availability` topic or last will), mirrored for Home Assistant. */
  availability(device: string, status: "online" | "offline"): void {
    if (!this.#config.discovery) return;
    this.#announced.add(device);
    this.#publish([{ topic: haTopics(device, this.#config.state_base).availability, payload: status, retain: true }]);
  }

  #publish(messages: MqttMessage[], device?: string): void {
    // In order, one after another: a state message must not overtake the config that declares it.
    void messages
      .reduce((chain, m) => chain.then(() => this.#bridge.publish(m.topic, m.payload, 1, m.retain)), Promise.resolve() as Promise<void>)
      .catch((error: unknown) => {
        if (device) this.#undiscovered.add(device);
        this.#log.warn("Home Assistant publish failed; sent again with the device's next message", { device, error: String(error) });
      });
  }
}
