/** The overview's filters (device text, room, metric), kept in the route's query so a link or a reload keeps them. */
import type { DeviceState } from "./store.ts";

export interface Filters {
  q: string;
  room: string;
  metric: string;
}

export function filtersFrom(query: URLSearchParams): Filters {
  return { q: query.get("q") ?? "", room: query.get("room") ?? "", metric: query.get("metric") ?? "" };
}

/** Whether a device passes the filters: text in its id or name, its room (or "unassigned"), having the metric. */
export function matches(state: DeviceState, f: Filters): boolean {
  const d = state.device;
  if (f.q) {
    const q = f.q.toLowerCase();
    if (!d.id.toLowerCase().includes(q) && !(d.name ?? "").toLowerCase().includes(q) && !d.type.toLowerCase().includes(q)) return false;
  }
  if (f.room && (d.room ?? "unassigned") !== f.room) return false;
  if (f.metric && !(f.metric in state.readings)) return false;
  return true;
}
