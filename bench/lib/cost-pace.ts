/**
 * bench/cost's paced senders: devices send at a load's real per-device rate, each the way a real
 * device (or the LAN agent) would, because what a message costs depends on its rate — a twin
 * packs what arrives within a queue's pack window, a consumer batch takes what arrives together
 * (docs/cost.md, "Measured at the load's own rates").
 *
 * - HTTPS single: one request per message, each device its own client with at most
 *   HTTPS_IN_FLIGHT requests open (a device that falls behind its schedule catches up, in order).
 * - MQTT QoS 0 / 1: one connection per device; each publish leaves on its schedule (QoS 1
 *   PUBACKs are awaited at the end, so a slow answer does not slow the rate).
 * - HTTPS batch: each device batches its own messages as agent/uplink.ts does — one request in
 *   flight, the next takes what waited meanwhile, up to 100.
 * - agent batch: one uplink for the whole fleet, the same way (agent/uplink.ts has no flush
 *   timer: it sends as soon as its outbox holds a message and no batch is in flight).
 */
import type { Device, Fleet, Transport } from "./cost-load.ts";

/** Requests a device keeps open at most over HTTPS single. */
export const HTTPS_IN_FLIGHT = 4;
/** The batch size of the "batch 100" transports (the agent's own default, `batch_max` in agent/config.ts, is 200). */
export const BATCH_MAX = 100;

export interface Paced {
  /** Messages sent (all answered when the promise resolves). */
  messages: number;
  /** From the start to the last answer, seconds. */
  seconds: number;
  /** When the last message was due, seconds after the start: `seconds` well above it means the edge fell behind. */
  scheduled_seconds: number;
  /** Requests (HTTPS) or publishes (MQTT) made. */
  requests: number;
  /** Messages per device a second, as scheduled. */
  rate_per_device: number;
  /** Messages answered per second over `seconds`. */
  achieved_per_second: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Sends to an uplink as agent/uplink.ts does: one batch in flight, the next takes what waited, up to BATCH_MAX. */
class Uplink {
  readonly #waiting: { device: Device; message: ReturnType<Fleet["message"]> }[] = [];
  #wake: (() => void) | undefined;
  #closed = false;
  requests = 0;
  readonly done: Promise<void>;

  constructor(send: (batch: { device: Device; message: ReturnType<Fleet["message"]> }[]) => Promise<void>) {
    this.done = (async () => {
      for (;;) {
        if (this.#waiting.length === 0) {
          if (this.#closed) return;
          await new Promise<void>((r) => {
            this.#wake = r;
          });
          continue;
        }
        const batch = this.#waiting.splice(0, BATCH_MAX);
        this.requests++;
        await send(batch);
      }
    })();
  }

  push(device: Device, message: ReturnType<Fleet["message"]>): void {
    this.#waiting.push({ device, message });
    this.#wake?.();
  }

  close(): void {
    this.#closed = true;
    this.#wake?.();
  }
}

/** One HTTPS client per device: requests in order, at most HTTPS_IN_FLIGHT open. */
class HttpsDevice {
  readonly #queue: (() => Promise<void>)[] = [];
  #open = 0;
  #idle: (() => void) | undefined;
  #error: unknown;

  push(send: () => Promise<void>): void {
    this.#queue.push(send);
    this.#pump();
  }

  #pump(): void {
    while (this.#open < HTTPS_IN_FLIGHT && this.#queue.length > 0) {
      const send = this.#queue.shift() as () => Promise<void>;
      this.#open++;
      send()
        .catch((e) => {
          this.#error ??= e;
        })
        .finally(() => {
          this.#open--;
          this.#pump();
          if (this.#open === 0 && this.#queue.length === 0) this.#idle?.();
        });
    }
  }

  async drained(): Promise<void> {
    if (this.#open > 0 || this.#queue.length > 0) await new Promise<void>((r) => (this.#idle = r));
    if (this.#error) throw this.#error;
  }
}

/**
 * Sends `perDevice` messages from each device at `ratePerDevice` messages a second over a
 * transport (MQTT: fleet.connect(devices) first). Devices start at spread-out phases within one
 * interval, as independent devices do. Resolves once every message was answered.
 */
export async function pace(
  fleet: Fleet,
  transport: Transport,
  devices: readonly Device[],
  ratePerDevice: number,
  perDevice: number,
): Promise<Paced> {
  const interval = 1000 / ratePerDevice;
  const schedule: { at: number; device: Device }[] = [];
  devices.forEach((device, d) => {
    const phase = ((d + 0.5) / devices.length) * interval;
    for (let i = 0; i < perDevice; i++) schedule.push({ at: phase + i * interval, device });
  });
  schedule.sort((a, b) => a.at - b.at);

  const https = new Map(devices.map((d) => [d.id, new HttpsDevice()]));
  const agent = transport === "agent_batch" ? new Uplink((batch) => fleet.postAsAgent(batch)) : undefined;
  const perDeviceUplink =
    transport === "https_batch"
      ? new Map(
          devices.map((d) => [
            d.id,
            new Uplink((batch) =>
              fleet.postAsDevice(
                d,
                batch.map((b) => b.message),
              ),
            ),
          ]),
        )
      : undefined;
  const publishes: Promise<unknown>[] = [];
  let requests = 0;

  const start = performance.now();
  for (const { at, device } of schedule) {
    const wait = start + at - performance.now();
    if (wait > 1) await sleep(wait);
    const message = fleet.message(device);
    switch (transport) {
      case "https_single":
        requests++;
        https.get(device.id)?.push(() => fleet.postAsDevice(device, message));
        break;
      case "mqtt_qos0":
      case "mqtt_qos1": {
        requests++;
        const topic = `devices/${device.id}/${device.kind === "event" ? "events" : "telemetry"}`;
        publishes.push(fleet.client(device).publishAsync(topic, JSON.stringify(message), { qos: transport === "mqtt_qos1" ? 1 : 0 }));
        break;
      }
      case "https_batch":
        perDeviceUplink?.get(device.id)?.push(device, message);
        break;
      case "agent_batch":
        agent?.push(device, message);
        break;
    }
  }
  const uplinks = [...(agent ? [agent] : []), ...(perDeviceUplink?.values() ?? [])];
  for (const u of uplinks) u.close();
  await Promise.all([...[...https.values()].map((h) => h.drained()), ...publishes, ...uplinks.map((u) => u.done)]);
  for (const u of uplinks) requests += u.requests;
  const seconds = (performance.now() - start) / 1000;
  return {
    messages: schedule.length,
    seconds,
    scheduled_seconds: (schedule.at(-1)?.at ?? 0) / 1000,
    requests,
    rate_per_device: ratePerDevice,
    achieved_per_second: schedule.length / Math.max(seconds, 1e-3),
  };
}
