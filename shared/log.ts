/**
 * Structured logs: one JSON object a line, so Workers Logs (and `wrangler tail`) can filter on
 * fields. Every line on a message's path carries its `correlation_id` (and `message_id`), so one
 * flow can be followed from ingest through routing, consumers and dead letters.
 */
export type LogLevel = "debug" | "info" | "warn" | "error";

export interface LogFields {
  correlation_id?: string | null;
  message_id?: string | null;
  [key: string]: unknown;
}

const ORDER: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/**
 * `info` by default: the per-message lines (`routed`, `delivered`) are `debug`, off the hot path
 * (issue 13) unless `LOG_LEVEL = "debug"` asks for them. Set once per isolate from the Worker's
 * entry and each Durable Object's (setLogLevel); the workerd test pool sets `warn`.
 */
function minimum(): LogLevel {
  return (globalThis as { EDGEMESH_LOG_LEVEL?: LogLevel }).EDGEMESH_LOG_LEVEL ?? "info";
}

/** Takes `LOG_LEVEL` from the environment when it names a level; anything else leaves the level as it is. */
export function setLogLevel(level: unknown): void {
  if (typeof level === "string" && Object.hasOwn(ORDER, level)) (globalThis as { EDGEMESH_LOG_LEVEL?: string }).EDGEMESH_LOG_LEVEL = level;
}

/** Whether lines of this level are written: callers skip building per-message lines nobody reads. */
export function logs(level: LogLevel): boolean {
  return ORDER[level] >= ORDER[minimum()];
}

export function log(level: LogLevel, msg: string, fields: LogFields = {}): void {
  if (ORDER[level] < ORDER[minimum()]) return;
  const line = JSON.stringify({ level, msg, time: new Date().toISOString(), ...fields });
  if (level === "error") console.error(line);
  else if (level === "warn") console.warn(line);
  else console.log(line);
}

/** A logger bound to one message: its correlation and message ids on every line. */
export function messageLogger(message: { id: string; correlation_id?: string | null }, base: LogFields = {}) {
  const fields = { correlation_id: message.correlation_id ?? message.id, message_id: message.id, ...base };
  return (level: LogLevel, msg: string, more: LogFields = {}) => log(level, msg, { ...fields, ...more });
}
