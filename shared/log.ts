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

export function log(level: LogLevel, msg: string, fields: LogFields = {}): void {
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
