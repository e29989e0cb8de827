/**
 * Commands from the edge to the LAN, and what the LAN says back. While the wake-up WebSocket
 * (agent/wake-stream.ts) is open, a device's commands are fetched when the edge says it has some
 * (and every few minutes regardless); while it is down, one long poll per device takes over. The
 * twin's durable command outbox redelivers what was not answered, so a command taken just before
 * a crash comes back. Each command is published to the device's `…/set` topic, and the
 * device's reply on the result topic (or, without one, the broker's acknowledgement) becomes the
 * command's result. Availability (`…/availability`, last wills) is reported to the twins.
 */
import { MissingPlaceholder } from "./adapter-spec.ts";
import type { AdapterSet } from "./adapters.ts";
import { backoffMs, type EdgeClient, type EdgeCommand, type EdgeDesired, EdgeError } from "./edge-client.ts";
import type { Logger } from "./log.ts";
import type { MqttBridge } from "./mqtt-bridge.ts";
import type { Stats } from "./stats.ts";

export interface DownlinkOptions {
  payload: "parameters" | "envelope";
  /** Publish desired-state changes to the set topic too. */
  desired: boolean;
  resultTimeoutS: number;
  waitS: number;
  retryInitialMs: number;
  retryMaxMs: number;
}

/** While the wake-up stream is open, a device is still polled this often, in case a wake-up was lost. */
export const SAFETY_POLL_MS = 5 * 60_000;

interface Pending {
  command: EdgeCommand;
  timer: NodeJS.Timeout;
}

export class Downlink {
  readonly #loops = new Map<string, Promise<void>>();
  readonly #pending = new Map<string, Pending[]>();
  /** The desired-state version last published per device (each is published once after a start). */
  readonly #desiredSent = new Map<string, number>();
  readonly #abort = new AbortController();
  #running = false;
  /** Set while the wake-up stream is open: loops fetch when woken instead of long polling. */
  #streaming = false;
  readonly #woken = new Set<string>();
  readonly #sleepers = new Map<string, () => void>();
  /** Also hands each delivered command to a LAN sink (Kafka `commands_topic`). */
  onCommand: (device: string, command: EdgeCommand) => Promise<void> = async () => {};
  /** Devices seen through an adapter take their commands where its mapping file says. */
  adapters: AdapterSet | undefined;

  readonly edge: EdgeClient;
  readonly bridge: MqttBridge;
  readonly stats: Stats;
  readonly log: Logger;
  readonly options: DownlinkOptions;

  constructor(edge: EdgeClient, bridge: MqttBridge, stats: Stats, log: Logger, options: DownlinkOptions) {
    this.edge = edge;
    this.bridge = bridge;
    this.stats = stats;
    this.log = log;
    this.options = options;
  }

  start(devices: Iterable<string>): void {
    this.#running = true;
    for (const device of devices) this.watch(device);
  }

  /** Starts the command loop of a device (once). */
  watch(device: string): void {
    if (!this.#running || this.#loops.has(device)) return;
    this.#loops.set(device, this.#loop(device));
  }

  /** The edge says the device has commands or a new desired state: fetch now (a new device gets its loop). */
  wake(device: string): void {
    this.stats.count("wakes");
    this.#woken.add(device);
    if (!this.#loops.has(device)) this.watch(device);
    this.#sleepers.get(device)?.();
  }

  /** The wake-up stream opened or closed: every loop fetches at once, then waits the new way. */
  setStreaming(streaming: boolean): void {
    this.#streaming = streaming;
    this.stats.streamConnected = streaming;
    for (const device of this.#loops.keys()) {
      this.#woken.add(device);
      this.#sleepers.get(device)?.();
    }
  }

  get devices(): string[] {
    return [...this.#loops.keys()];
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.#abort.abort();
    for (const list of this.#pending.values()) for (const p of list) clearTimeout(p.timer);
    await Promise.allSettled(this.#loops.values());
  }

  async #loop(device: string): Promise<void> {
    let attempt = 0;
    while (this.#running) {
      try {
        // A wake-up that arrives while this fetch runs is kept for the next round.
        this.#woken.delete(device);
        const streaming = this.#streaming;
        const { commands, desired } = await this.edge.commands(device, streaming ? 0 : this.options.waitS, this.#abort.signal);
        attempt = 0;
        for (const command of commands) await this.#deliver(device, command);
        // An adapter's device takes commands only: its mapping file says nothing of a desired state.
        if (
          this.options.desired &&
          !this.adapters?.owns(device) &&
          desired.version > 0 &&
          desired.version !== this.#desiredSent.get(device)
        )
          await this.#sendDesired(device, desired);
        if (streaming) await this.#sleep(device, SAFETY_POLL_MS);
      } catch (error) {
        if (!this.#running) return;
        if (error instanceof EdgeError && error.status === 403) {
          // Not bridged on the edge (metadata.agent): report it, and ask again only rarely.
          if (this.stats.unknownDevice(device, "the edge does not bridge it for this agent (metadata.agent)"))
            this.log.warn("device unknown to the edge; its commands cannot be fetched", { device });
          await this.#pause(this.options.retryMaxMs);
          continue;
        }
        this.stats.error("downlink", error);
        this.log.warn("command poll failed", { device, error: (error as Error).message });
        await this.#pause(backoffMs(attempt++, this.options.retryInitialMs, this.options.retryMaxMs));
      }
    }
  }

  /** Until the device is woken, the stream changes, the safety interval passes, or the agent stops. */
  #sleep(device: string, ms: number): Promise<void> {
    if (this.#woken.has(device) || !this.#running) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#abort.signal.removeEventListener("abort", done);
        this.#sleepers.delete(device);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#abort.signal.addEventListener("abort", done);
      this.#sleepers.set(device, done);
    });
  }

  /** A wait that ends early when the agent stops. */
  #pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#abort.signal.addEventListener("abort", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  async #deliver(device: string, command: EdgeCommand): Promise<void> {
    // The edge offers an unanswered command again after its retry delay; while this agent still
    // waits for the device's reply it is not published twice (a toggle would act twice).
    if (this.#pending.get(device)?.some((p) => p.command.id === command.id)) return;
    if (this.adapters?.owns(device)) return this.#deliverByAdapter(this.adapters, device, command);
    const payload =
      this.options.payload === "parameters"
        ? command.parameters
        : { id: command.id, command: command.command, parameters: command.parameters, expires_at: command.expires_at };
    // Waiting for the reply starts before the publish: a quick device answers before the PUBACK.
    if (this.bridge.resultTopic) {
      const timer = setTimeout(() => {
        if (!this.#take(device, command.id)) return;
        void this.#report(device, command.id, { status: "failed", error: `no reply within ${this.options.resultTimeoutS} s` });
      }, this.options.resultTimeoutS * 1000);
      this.#pending.set(device, [...(this.#pending.get(device) ?? []), { command, timer }]);
    }
    try {
      await this.bridge.publish(this.bridge.setTopic.topicFor(device), JSON.stringify(payload), 1);
    } catch (error) {
      // The twin redelivers an unanswered command after its retry delay; nothing is lost here.
      this.#take(device, command.id);
      this.log.warn("command not published; the edge will offer it again", { device, id: command.id, error: (error as Error).message });
      return;
    }
    this.stats.count("commands_delivered");
    await this.onCommand(device, command).catch((error) => this.log.warn("command not produced to the LAN sink", { error: String(error) }));
    this.log.info("command published", { device, id: command.id, command: command.command });
    if (!this.bridge.resultTopic) await this.#report(device, command.id, { status: "succeeded", result: { delivered: true } });
  }

  /**
   * A device of an adapter (docs/devices.md): the command goes where its mapping file says; the
   * device answers with its state (readings), so the result is that the broker took the publish.
   */
  async #deliverByAdapter(adapters: AdapterSet, device: string, command: EdgeCommand): Promise<void> {
    let message: { topic: string; payload: string } | undefined;
    try {
      message = adapters.command(device, command);
    } catch (error) {
      if (!(error instanceof MissingPlaceholder)) throw error;
      return this.#report(device, command.id, { status: "failed", error: error.message });
    }
    if (!message) return this.#report(device, command.id, { status: "failed", error: `its adapter maps no command "${command.command}"` });
    try {
      await this.bridge.publish(message.topic, message.payload, 1);
    } catch (error) {
      this.log.warn("command not published; the edge will offer it again", { device, id: command.id, error: (error as Error).message });
      return;
    }
    this.stats.count("commands_delivered");
    await this.onCommand(device, command).catch((error) => this.log.warn("command not produced to the LAN sink", { error: String(error) }));
    this.log.info("command published", { device, id: command.id, command: command.command, topic: message.topic });
    await this.#report(device, command.id, { status: "succeeded", result: { delivered: true, topic: message.topic } });
  }

  #take(device: string, id?: string): Pending | undefined {
    const list = this.#pending.get(device) ?? [];
    const at = id === undefined ? 0 : list.findIndex((p) => p.command.id === id);
    if (at < 0 || at >= list.length) return undefined;
    const [pending] = list.splice(at, 1);
    if (pending) clearTimeout(pending.timer);
    return pending;
  }

  /** The twin's desired state, to the device's set topic (the whole document: set topics are idempotent). */
  async #sendDesired(device: string, desired: EdgeDesired): Promise<void> {
    const payload = this.options.payload === "parameters" ? desired.state : { desired: desired.state, version: desired.version };
    try {
      await this.bridge.publish(this.bridge.setTopic.topicFor(device), JSON.stringify(payload), 1);
      this.#desiredSent.set(device, desired.version);
      this.stats.count("desired_published");
      this.log.info("desired state published", { device, version: desired.version });
    } catch (error) {
      // Not recorded as sent: the next poll answer tries again.
      this.log.warn("desired state not published", { device, error: (error as Error).message });
    }
  }

  /** A device's reply: `{id | command_id, status?, result?, error?}`; without an id it answers its oldest open command. */
  result(device: string, raw: Buffer): void {
    let body: Record<string, unknown> = {};
    try {
      const parsed = JSON.parse(raw.toString("utf8"));
      if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)) body = parsed as Record<string, unknown>;
      else body = { result: parsed };
    } catch {
      body = { result: raw.toString("utf8").slice(0, 1024) };
    }
    const id = typeof body.command_id === "string" ? body.command_id : typeof body.id === "string" ? body.id : undefined;
    const pending = this.#take(device, id);
    if (!pending) {
      this.log.debug("reply with no open command", { device, id });
      return;
    }
    const failed = body.status === "failed" || typeof body.error === "string";
    const result =
      "result" in body
        ? body.result
        : Object.fromEntries(Object.entries(body).filter(([k]) => !["id", "command_id", "status"].includes(k)));
    void this.#report(
      device,
      pending.command.id,
      failed
        ? { status: "failed", error: String(body.error ?? "the device reported failure").slice(0, 1024) }
        : { status: "succeeded", result },
    );
  }

  async #report(device: string, id: string, outcome: { status: "succeeded" | "failed"; result?: unknown; error?: string }): Promise<void> {
    for (let attempt = 0; attempt < 5 && this.#running; attempt++) {
      try {
        await this.edge.commandResult(device, id, outcome);
        this.stats.count("command_results");
        return;
      } catch (error) {
        this.stats.error("command result", error);
        await new Promise((r) => setTimeout(r, backoffMs(attempt, this.options.retryInitialMs, this.options.retryMaxMs)));
      }
    }
    this.log.error("command result not delivered", { device, id });
  }

  /** Availability seen on the LAN; retried a few times (the retained topic repeats it on reconnect). */
  async presence(device: string, status: "online" | "offline"): Promise<void> {
    for (let attempt = 0; attempt < 5 && this.#running; attempt++) {
      try {
        await this.edge.presence(device, status, status === "online" ? "connect" : "last_will");
        this.stats.count("presence_reports");
        return;
      } catch (error) {
        this.stats.error("presence", error);
        await new Promise((r) => setTimeout(r, backoffMs(attempt, this.options.retryInitialMs, this.options.retryMaxMs)));
      }
    }
  }
}
