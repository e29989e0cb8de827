/** Counters and recent rates the health endpoint reports. */

export type Counter =
  | "received"
  | "queued"
  | "redelivered"
  | "forwarded"
  | "rejected_by_edge"
  | "invalid"
  | "unmapped"
  | "unknown_device"
  | "dropped_qos0_full"
  | "uplink_errors"
  | "commands_delivered"
  | "command_results"
  | "desired_published"
  | "presence_reports"
  | "wakes"
  | "backpressure_pauses";

/** Events per second over the last minute, from per-second buckets. */
class Rate {
  readonly #buckets = new Array<number>(60).fill(0);
  #second = Math.floor(Date.now() / 1000);

  add(n: number, now = Date.now()): void {
    this.#advance(now);
    this.#buckets[this.#second % 60] = (this.#buckets[this.#second % 60] ?? 0) + n;
  }

  perSecond(now = Date.now()): number {
    this.#advance(now);
    // The current second is still filling; average the 59 complete ones before it.
    let sum = 0;
    for (let i = 1; i < 60; i++) sum += this.#buckets[(this.#second - i + 60) % 60] ?? 0;
    return sum / 59;
  }

  #advance(now: number): void {
    const second = Math.floor(now / 1000);
    for (let s = this.#second + 1; s <= Math.min(second, this.#second + 60); s++) this.#buckets[s % 60] = 0;
    this.#second = Math.max(this.#second, second);
  }
}

export class Stats {
  readonly counters: Record<Counter, number> = {
    received: 0,
    queued: 0,
    redelivered: 0,
    forwarded: 0,
    rejected_by_edge: 0,
    invalid: 0,
    unmapped: 0,
    unknown_device: 0,
    dropped_qos0_full: 0,
    uplink_errors: 0,
    commands_delivered: 0,
    command_results: 0,
    desired_published: 0,
    presence_reports: 0,
    wakes: 0,
    backpressure_pauses: 0,
  };
  readonly received = new Rate();
  readonly forwarded = new Rate();
  /** Devices seen on the LAN that the config or the edge does not know, with when and why. */
  readonly unknownDevices = new Map<string, { last_seen: string; reason: string; count: number }>();
  readonly recentErrors: { at: string; where: string; error: string }[] = [];
  mqttConnected = false;
  /** The wake-up WebSocket to the edge is open (commands are fetched when it says, not long-polled). */
  streamConnected = false;
  edge: { reachable: boolean | null; last_ok: string | null; last_error: string | null } = {
    reachable: null,
    last_ok: null,
    last_error: null,
  };

  count(counter: Counter, n = 1): void {
    this.counters[counter] += n;
    if (counter === "received") this.received.add(n);
    if (counter === "forwarded") this.forwarded.add(n);
  }

  unknownDevice(device: string, reason: string): boolean {
    const entry = this.unknownDevices.get(device);
    this.count("unknown_device");
    if (entry) {
      entry.count++;
      entry.last_seen = new Date().toISOString();
      return false;
    }
    if (this.unknownDevices.size < 1000) this.unknownDevices.set(device, { last_seen: new Date().toISOString(), reason, count: 1 });
    return true;
  }

  error(where: string, error: unknown): void {
    this.recentErrors.push({ at: new Date().toISOString(), where, error: String(error instanceof Error ? error.message : error) });
    if (this.recentErrors.length > 20) this.recentErrors.shift();
  }
}
