/**
 * What the dashboard knows about the fleet: the registry's devices, and their latest readings
 * and availability as the hubs report them. Views read it and listen for changes; the live
 * client writes to it.
 */
import type { Snapshot, Update } from "./live.ts";
import type { Availability, Device, Reading, Room } from "./types.ts";

export interface DeviceState {
  device: Device;
  readings: Record<string, Reading>;
  availability: Availability;
}

export type StoreEvent =
  | { kind: "devices" }
  | { kind: "reading"; device: string; metric: string; reading: Reading; live: boolean }
  | { kind: "availability"; device: string; availability: Availability }
  | { kind: "command"; device: string; data: { id: string; command: string; status: string } & Record<string, unknown>; at: string }
  | { kind: "dead_letter"; data: Record<string, unknown>; at: string }
  | { kind: "alert"; data: Record<string, unknown>; at: string }
  | { kind: "resync"; hub: string };

export class Store {
  readonly devices = new Map<string, DeviceState>();
  rooms: Room[] = [];
  #listeners = new Set<(event: StoreEvent) => void>();
  /** Readings that arrived for a device the registry list did not have yet. */
  #orphans = new Map<string, Record<string, Reading>>();

  on(listener: (event: StoreEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #emit(event: StoreEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (error) {
        console.error("dashboard listener failed", error);
      }
    }
  }

  setDevices(devices: Device[]): void {
    const seen = new Set<string>();
    for (const device of devices) {
      seen.add(device.id);
      const existing = this.devices.get(device.id);
      if (existing) existing.device = device;
      else {
        this.devices.set(device.id, {
          device,
          readings: this.#orphans.get(device.id) ?? {},
          availability: { status: device.availability },
        });
        this.#orphans.delete(device.id);
      }
    }
    for (const id of [...this.devices.keys()]) if (!seen.has(id)) this.devices.delete(id);
    this.#emit({ kind: "devices" });
  }

  setRooms(rooms: Room[]): void {
    this.rooms = rooms;
  }

  /** Every metric name any device has reported, sorted. */
  metrics(): string[] {
    const names = new Set<string>();
    for (const state of this.devices.values()) for (const name of Object.keys(state.readings)) names.add(name);
    return [...names].sort();
  }

  applySnapshot(hub: string, snapshot: Snapshot): void {
    for (const [id, entry] of Object.entries(snapshot.devices ?? {})) {
      for (const [metric, reading] of Object.entries(entry.readings ?? {})) this.#reading(id, metric, reading, true);
      if (entry.availability) this.#availability(id, entry.availability);
    }
    this.#emit({ kind: "resync", hub });
  }

  applyUpdate(update: Update): void {
    const id = update.device;
    switch (update.stream) {
      case "twin": {
        if (!id) return;
        const readings = (update.data.readings ?? {}) as Record<string, Reading>;
        for (const [metric, reading] of Object.entries(readings)) this.#reading(id, metric, reading, false);
        return;
      }
      case "availability": {
        if (!id) return;
        const data = update.data as { status: Availability["status"]; reason?: string };
        this.#availability(id, { status: data.status, since: update.at, reason: data.reason ?? "" });
        return;
      }
      case "command":
        if (id) this.#emit({ kind: "command", device: id, data: update.data as never, at: update.at });
        return;
      case "dead_letter":
        this.#emit({ kind: "dead_letter", data: update.data, at: update.at });
        return;
      case "alert":
        this.#emit({ kind: "alert", data: update.data, at: update.at });
        return;
    }
  }

  #reading(id: string, metric: string, reading: Reading, authoritative: boolean): void {
    const state = this.devices.get(id);
    if (!state) {
      const pending = this.#orphans.get(id) ?? {};
      pending[metric] = reading;
      this.#orphans.set(id, pending);
      return;
    }
    const current = state.readings[metric];
    // An older reading never replaces a newer one (the twin's own rule), unless a snapshot says so.
    if (!authoritative && current && Date.parse(current.at) > Date.parse(reading.at)) return;
    if (current && current.at === reading.at && current.value === reading.value) return;
    state.readings[metric] = reading;
    this.#emit({ kind: "reading", device: id, metric, reading, live: !authoritative });
  }

  #availability(id: string, availability: Availability): void {
    const state = this.devices.get(id);
    if (!state) return;
    if (state.availability.status === availability.status && state.availability.since === availability.since) return;
    state.availability = availability;
    state.device.availability = availability.status;
    this.#emit({ kind: "availability", device: id, availability });
  }
}
