/**
 * RoomActor: one Durable Object per room (seed 002's room actor). It keeps the latest reading
 * of every member device, so a room's live aggregates (latest, min, max, mean per metric) are
 * one call away, and it forwards a command to every member and gathers their outcomes.
 */
import { DurableObject } from "cloudflare:workers";
import type { CommandRequest } from "../shared/schemas/twin";
import type { Command } from "./command-outbox";
import { twinStub } from "./stubs";
import type { ReportedReading } from "./twin-document";

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
  CREATE TABLE IF NOT EXISTS latest (
    device TEXT NOT NULL, metric TEXT NOT NULL, value REAL NOT NULL, is_bool INTEGER NOT NULL,
    unit TEXT, at TEXT NOT NULL, PRIMARY KEY (device, metric));
`;

export class RoomActor extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.storage.sql.exec(SCHEMA);
  }

  async join(device: string): Promise<void> {
    this.ctx.storage.sql.exec("INSERT OR IGNORE INTO members (device) VALUES (?)", device);
  }

  async leave(device: string): Promise<void> {
    this.ctx.storage.sql.exec("DELETE FROM members WHERE device = ?", device);
    this.ctx.storage.sql.exec("DELETE FROM latest WHERE device = ?", device);
  }

  async members(): Promise<string[]> {
    return this.ctx.storage.sql
      .exec<{ device: string }>("SELECT device FROM members ORDER BY device")
      .toArray()
      .map((r) => r.device);
  }

  /** A member's twin reports readings that changed; older ones never overwrite newer. */
  async report(device: string, readings: Record<string, ReportedReading>): Promise<void> {
    await this.reportAll({ [device]: readings });
  }

  /** Changed readings of many members at once (the room's live hub gathers them, live-hub.ts). */
  async reportAll(byDevice: Record<string, Record<string, ReportedReading>>): Promise<void> {
    const rows: [string, string, number, number, string | null, string][] = [];
    for (const [device, readings] of Object.entries(byDevice)) {
      for (const [metric, r] of Object.entries(readings))
        rows.push([device, metric, Number(r.value), typeof r.value === "boolean" ? 1 : 0, r.unit ?? null, r.at]);
    }
    if (rows.length === 0) return;
    this.ctx.storage.sql.exec(
      `INSERT INTO latest (device, metric, value, is_bool, unit, at)
       SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5 FROM json_each(?)
       WHERE value ->> 0 IN (SELECT device FROM members)
       ON CONFLICT (device, metric) DO UPDATE SET value = excluded.value, is_bool = excluded.is_bool,
         unit = excluded.unit, at = excluded.at WHERE excluded.at >= latest.at`,
      JSON.stringify(rows),
    );
  }

  /** Live aggregates over the members' latest readings, per metric. */
  async aggregates(): Promise<MetricAggregate[]> {
    const rows = this.ctx.storage.sql
      .exec<{ device: string; metric: string; value: number; is_bool: number; unit: string | null; at: string }>(
        "SELECT device, metric, value, is_bool, unit, at FROM latest ORDER BY metric, at DESC",
      )
      .toArray();
    const byMetric = new Map<string, typeof rows>();
    for (const row of rows) byMetric.set(row.metric, [...(byMetric.get(row.metric) ?? []), row]);
    return [...byMetric].map(([metric, list]) => {
      const newest = list[0] as (typeof rows)[number];
      const numeric = list.filter((r) => !r.is_bool).map((r) => r.value);
      const aggregate: MetricAggregate = {
        metric,
        unit: newest.unit,
        devices: list.length,
        latest: { device: newest.device, value: newest.is_bool ? newest.value !== 0 : newest.value, at: newest.at },
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
    await this.ctx.storage.deleteAll();
    this.ctx.storage.sql.exec(SCHEMA);
  }
}
