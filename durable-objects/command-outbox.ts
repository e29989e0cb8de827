/**
 * A device's durable command outbox (seed 002's command flow), kept in its Durable Object's
 * SQLite. Statuses: queued → delivered → succeeded | failed | expired. A command is delivered at
 * most once per delivery attempt, redelivered only when its delivery went unanswered for
 * REDELIVER_AFTER_MS, and never after it expired; the device recognises a redelivery by its id.
 */
import type { Command, CommandStatus } from "../shared/api-types";

export type { Command, CommandStatus } from "../shared/api-types";

type Row = {
  id: string;
  command: string;
  parameters: string;
  status: CommandStatus;
  correlation_id: string;
  created_at: string;
  expires_at: number;
  attempts: number;
  delivered_at: number | null;
  result: string | null;
  error: string | null;
  history: string;
};

export const OUTBOX_SCHEMA = `
  CREATE TABLE IF NOT EXISTS commands (
    id TEXT PRIMARY KEY, command TEXT NOT NULL, parameters TEXT NOT NULL, status TEXT NOT NULL,
    correlation_id TEXT NOT NULL, created_at TEXT NOT NULL, expires_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, delivered_at INTEGER, result TEXT, error TEXT, history TEXT NOT NULL);
  CREATE INDEX IF NOT EXISTS commands_status ON commands (status, expires_at);
`;

export const REDELIVER_AFTER_MS = 30_000;
export const FINAL: readonly CommandStatus[] = ["succeeded", "failed", "expired"];

function toCommand(row: Row): Command {
  return {
    id: row.id,
    command: row.command,
    parameters: JSON.parse(row.parameters) as Record<string, unknown>,
    status: row.status,
    correlation_id: row.correlation_id,
    created_at: row.created_at,
    expires_at: new Date(row.expires_at).toISOString(),
    attempts: row.attempts,
    result: row.result === null ? null : (JSON.parse(row.result) as unknown),
    error: row.error,
    history: JSON.parse(row.history) as Command["history"],
  };
}

export class CommandOutbox {
  constructor(private readonly sql: SqlStorage) {
    sql.exec(OUTBOX_SCHEMA);
  }

  pendingCount(): number {
    return this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM commands WHERE status IN ('queued', 'delivered')").one().n;
  }

  add(
    input: { id: string; command: string; parameters: Record<string, unknown>; correlation_id: string; ttlMs: number },
    now: number,
  ): Command {
    const at = new Date(now).toISOString();
    this.sql.exec(
      "INSERT INTO commands (id, command, parameters, status, correlation_id, created_at, expires_at, history) VALUES (?, ?, ?, 'queued', ?, ?, ?, ?)",
      input.id,
      input.command,
      JSON.stringify(input.parameters),
      input.correlation_id,
      at,
      now + input.ttlMs,
      JSON.stringify([{ status: "queued", at }]),
    );
    return this.get(input.id) as Command;
  }

  get(id: string): Command | undefined {
    const row = this.sql.exec<Row>("SELECT * FROM commands WHERE id = ?", id).toArray()[0];
    return row ? toCommand(row) : undefined;
  }

  list(limit: number, status?: CommandStatus): Command[] {
    const rows = status
      ? this.sql.exec<Row>("SELECT * FROM commands WHERE status = ? ORDER BY created_at DESC, id DESC LIMIT ?", status, limit)
      : this.sql.exec<Row>("SELECT * FROM commands ORDER BY created_at DESC, id DESC LIMIT ?", limit);
    return rows.toArray().map(toCommand);
  }

  #setStatus(id: string, status: CommandStatus, now: number, extra: { result?: unknown; error?: string | null } = {}): void {
    const row = this.sql.exec<Row>("SELECT history FROM commands WHERE id = ?", id).toArray()[0];
    if (!row) return;
    const history = JSON.parse(row.history) as Command["history"];
    history.push({ status, at: new Date(now).toISOString() });
    this.sql.exec(
      "UPDATE commands SET status = ?, history = ?, result = COALESCE(?, result), error = COALESCE(?, error) WHERE id = ?",
      status,
      JSON.stringify(history),
      extra.result === undefined ? null : JSON.stringify(extra.result),
      extra.error ?? null,
      id,
    );
  }

  /** Takes the commands due for delivery (queued, or delivered and unanswered too long) and marks them delivered. */
  takeDue(now: number, limit = 20): Command[] {
    const rows = this.sql
      .exec<Row>(
        `SELECT * FROM commands WHERE expires_at > ? AND (status = 'queued' OR (status = 'delivered' AND delivered_at <= ?))
         ORDER BY created_at, id LIMIT ?`,
        now,
        now - REDELIVER_AFTER_MS,
        limit,
      )
      .toArray();
    for (const row of rows) {
      this.sql.exec("UPDATE commands SET attempts = attempts + 1, delivered_at = ? WHERE id = ?", now, row.id);
      if (row.status === "queued") this.#setStatus(row.id, "delivered", now);
    }
    return rows.map((row) => this.get(row.id) as Command);
  }

  /** Records the device's answer; answers for a finished command change nothing (idempotent). */
  complete(id: string, outcome: { status: "succeeded" | "failed"; result?: unknown; error?: string }, now: number): Command | undefined {
    const current = this.get(id);
    if (!current || FINAL.includes(current.status)) return current;
    this.#setStatus(id, outcome.status, now, { result: outcome.result, error: outcome.error ?? null });
    return this.get(id);
  }

  /** The ids `expire(now)` would expire. */
  dueToExpire(now: number): string[] {
    return this.sql
      .exec<{ id: string }>("SELECT id FROM commands WHERE status IN ('queued', 'delivered') AND expires_at <= ?", now)
      .toArray()
      .map((r) => r.id);
  }

  /** Expires what is past its TTL; returns the expired commands. */
  expire(now: number): Command[] {
    const rows = this.sql.exec<Row>("SELECT * FROM commands WHERE status IN ('queued', 'delivered') AND expires_at <= ?", now).toArray();
    for (const row of rows) this.#setStatus(row.id, "expired", now);
    return rows.map((row) => this.get(row.id) as Command);
  }

  nextExpiry(): number | undefined {
    const row = this.sql
      .exec<{ at: number | null }>("SELECT MIN(expires_at) AS at FROM commands WHERE status IN ('queued', 'delivered')")
      .one();
    return row.at ?? undefined;
  }

  /** Drops finished commands older than the retention, keeping the table small. */
  prune(olderThan: number): void {
    this.sql.exec("DELETE FROM commands WHERE status IN ('succeeded', 'failed', 'expired') AND expires_at < ?", olderThan);
  }
}
