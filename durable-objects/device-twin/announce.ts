/**
 * The twin's live announcements to its room's hub (live-hub.ts), throttled: the first goes at
 * once (no added latency for an idle device); while a call is in flight, or within HUB_GAP_MS of
 * the last one, what comes is gathered — a device's changed readings merged into one `twin`
 * update, its room report merged too — and goes in the next call. So a busy twin makes at most
 * one hub call per HUB_GAP_MS however many messages it takes, and the hub writes at most that.
 */
import { log } from "../../shared/log";
import type { HubUpdate } from "../../shared/schemas/live";
import type { RoomReport } from "../live-hub";
import { hubName, hubStub } from "../stubs";
import { mergeReadings, type ReportedReading } from "../twin-document";

/** A busy twin calls its hub at most once per this many ms (dashboards see a reading within it). */
export const HUB_GAP_MS = 50;

export class HubAnnouncer {
  /** The twin: its (metered) env and ctx are read at each use (core.ts). */
  readonly #owner: { readonly ctx: DurableObjectState; readonly env: Env };
  #updates: HubUpdate[] = [];
  #report: RoomReport | undefined;
  #hub = "";
  #busy = false;
  #lastAt = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Hub calls made (for the tests and the cost notes). */
  calls = 0;

  constructor(owner: { readonly ctx: DurableObjectState; readonly env: Env }) {
    this.#owner = owner;
  }

  /** Queues updates (and the room's share of changed readings) for the room's hub. */
  add(room: string | null, device: string, updates: HubUpdate[], readings?: Record<string, ReportedReading>): void {
    const hub = hubName(room);
    // A device moved to another room: what waits goes to the old hub first.
    if (hub !== this.#hub && (this.#updates.length > 0 || this.#report)) this.#send();
    this.#hub = hub;
    for (const update of updates) {
      const last = this.#updates.at(-1);
      if (update.stream === "twin" && last?.stream === "twin" && last.device === update.device) {
        // Consecutive readings of the device: one update with the newest of each reading.
        const merged = { ...((last.data.readings as Record<string, ReportedReading>) ?? {}) };
        mergeReadings(merged, (update.data.readings as Record<string, ReportedReading>) ?? {});
        this.#updates[this.#updates.length - 1] = {
          ...update,
          routing_key: update.routing_key ?? last.routing_key,
          data: { ...update.data, readings: merged },
        };
      } else this.#updates.push(update);
    }
    if (readings && room) {
      if (!this.#report || this.#report.room !== room) this.#report = { room, device, readings: { ...readings } };
      else mergeReadings(this.#report.readings, readings);
    }
    this.#pump();
  }

  #pump(): void {
    if (this.#busy || this.#timer !== undefined || (this.#updates.length === 0 && !this.#report)) return;
    const wait = this.#lastAt + HUB_GAP_MS - Date.now();
    if (wait > 0) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#pump();
      }, wait);
      return;
    }
    this.#send();
  }

  #send(): void {
    const updates = this.#updates;
    const report = this.#report;
    const hub = this.#hub;
    this.#updates = [];
    this.#report = undefined;
    if (updates.length === 0 && !report) return;
    this.#busy = true;
    this.#lastAt = Date.now();
    this.calls++;
    const call = hubStub(this.#owner.env, hub)
      .publish(updates, report)
      .then(() => undefined)
      .catch((error: unknown) => log("warn", "live hub update failed", { hub, error: String(error) }))
      .finally(() => {
        this.#busy = false;
        this.#pump();
      });
    this.#owner.ctx.waitUntil(call);
  }

  forget(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#updates = [];
    this.#report = undefined;
  }
}
