/**
 * RoomActor: one Durable Object per room (seed 002's room actor). It keeps the latest reading
 * of every member device, so a room's live aggregates (latest, min, max, mean per metric) are
 * one call away, and it forwards a command to every member and gathers their outcomes. The
 * latest readings live in memory and reach storage lazily, at most every PERSIST_MS, one row per
 * member that changed (a restart loses at most that much of a live view the next reading mends).
 */
import { DurableObject } from "cloudflare:workers";
import type { CommandRequest } from "../shared/schemas/twin";
import type { Command } from "./command-outbox";
import { twinStub } from "./stubs";
import { mergeReadings, type ReportedReading } from "./twin-document";

export type { MetricAggregate } from "../shared/api-types";

import type { MetricAggregate } from "../shared/api-types";

export interface RoomCommandOutcome {
  device: string;
  ok: boolean;
  command?: Command;
  error?: { code: string; message: string };
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS members (device TEXT PRIMARY KEY);
  CREATE TABLE IF NOT EXISTS member_readings (device TEXT PRIMARY KEY, readings TEXT NOT NULL);
`;

type Readings = Record<string, ReportedReading>;

/** Members' latest readings are written at most this long after they change. */
const PERSIST_MS = 10_000;

export class RoomActor extends DurableObject<Env> {
  /** Each member's latest readings: one row per member (not per reading), mirrored in memory. */
  #latest = new Map<string, Readings>();
  #dirty = new Set<string>();
  #persistTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const sql = ctx.storage.sql;
    sql.exec(SCHEMA);
    // Versions before kept a row per member and reading (`latest`): folded into one row per member.
    if (sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'latest'").toArray().length > 0) {
      sql.exec(
        `INSERT OR REPLACE INTO member_readings (device, readings)
         SELECT device, json_group_object(metric, json_object('value', CASE is_bool WHEN 1 THEN json(iif(value != 0, 'true', 'false')) ELSE value END, 'unit', unit, 'at', at))
         FROM latest GROUP BY device`,
      );
      sql.exec("DROP TABLE latest");
    }
    for (const row of sql.exec<{ device: string; readings: string }>("SELECT device, readings FROM member_readings")) {
      const readings = JSON.parse(row.readings) as Record<string, ReportedReading & { unit?: string | null }>;
      for (const r of Object.values(readings)) if (r.unit === null) delete r.unit;
      this.#latest.set(row.device, readings);
    }
  }

  async join(device: string): Promise<void> {
    this.ctx.storage.sql.exec("INSERT OR IGNORE INTO members (device) VALUES (?)", device);
  }

  async leave(device: string): Promise<void> {
    this.ctx.storage.sql.exec("DELETE FROM members WHERE device = ?", device);
    this.ctx.storage.sql.exec("DELETE FROM member_readings WHERE device = ?", device);
    this.#latest.delete(device);
    this.#dirty.delete(device);
  }

  async members(): Promise<string[]> {
    return this.ctx.storage.sql
      .exec<{ device: string }>("SELECT device FROM members ORDER BY device")
      .toArray()
      .map((r) => r.device);
  }

  /** A member's twin reports readings that changed; older ones never overwrite newer. */
  async report(device: string, readings: Readings): Promise<void> {
    await this.reportAll({ [device]: readings });
  }

  /** Changed readings of many members at once (the room's live hub gathers them, live-hub.ts): persisted lazily. */
  async reportAll(byDevice: Record<string, Readings>): Promise<void> {
    const members = new Set(await this.members());
    for (const [device, readings] of Object.entries(byDevice)) {
      if (!members.has(device)) continue;
      const current = this.#latest.get(device) ?? {};
      if (mergeReadings(current, readings).length === 0) continue;
      this.#latest.set(device, current);
      this.#dirty.add(device);
    }
    if (this.#dirty.size > 0)
      this.#persistTimer ??= setTimeout(() => {
        this.#persistTimer = undefined;
        this.#persist();
      }, PERSIST_MS);
  }

  /** One row per member whose readings changed since the last time. */
  #persist(): void {
    for (const device of this.#dirty) {
      const current = this.#latest.get(device);
      if (current)
        this.ctx.storage.sql.exec(
          "INSERT OR REPLACE INTO member_readings (device, readings) VALUES (?, ?)",
          device,
          JSON.stringify(current),
        );
    }
    this.#dirty.clear();
  }

  /** Live aggregates over the members' latest readings, per metric. */
  async aggregates(): Promise<MetricAggregate[]> {
    type Row = { device: string; value: number | boolean; unit: string | null; at: string };
    const byMetric = new Map<string, Row[]>();
    for (const [device, readings] of this.#latest) {
      for (const [metric, r] of Object.entries(readings)) {
        const list = byMetric.get(metric) ?? [];
        list.push({ device, value: r.value, unit: r.unit ?? null, at: r.at });
        byMetric.set(metric, list);
      }
    }
    return [...byMetric]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([metric, list]) => {
        list.sort((a, b) => Date.parse(b.at) - Date.parse(a.at));
        const newest = list[0] as Row;
        const numeric = list.flatMap((r) => (typeof r.value === "number" ? [r.value] : []));
        const aggregate: MetricAggregate = {
          metric,
          unit: newest.unit,
          devices: list.length,
          latest: { device: newest.device, value: newest.value, at: newest.at },
        };
        if (numeric.length > 0) {
          aggregate.min = Math.min(...numeric);
          aggregate.max = Math.max(...numeric);
          aggregate.mean = Number.parseFloat((numeric.reduce((a, b) => a + b, 0) / numeric.length).toPrecision(12));
        }
        return aggregate;
      });
  }

  /** Forwards a command to every member and reports each device's outcome (seed 002). */
  async forwardCommand(request: CommandRequest): Promise<RoomCommandOutcome[]> {
    const devices = await this.members();
    return Promise.all(
      devices.map(async (device): Promise<RoomCommandOutcome> => {
        try {
          const twin = twinStub(this.env, device);
          const queued = await twin.enqueueCommand({ ...request, wait_s: 0 });
          if (!queued.ok) return { device, ok: false, error: { code: queued.code, message: queued.message } };
          const command =
            request.wait_s > 0 ? ((await twin.awaitCommand(queued.command.id, request.wait_s * 1000)) ?? queued.command) : queued.command;
          return { device, ok: true, command };
        } catch (error) {
          // One unreachable member must not hide the others' outcomes.
          return { device, ok: false, error: { code: "unavailable", message: String(error) } };
        }
      }),
    );
  }

  async forget(): Promise<void> {
    this.#latest.clear();
    this.#dirty.clear();
    if (this.#persistTimer !== undefined) clearTimeout(this.#persistTimer);
    this.#persistTimer = undefined;
    await this.ctx.storage.deleteAll();
    this.ctx.storage.sql.exec(SCHEMA);
  }
}
