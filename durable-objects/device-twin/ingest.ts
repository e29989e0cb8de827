/**
 * The pure part of ingest: every item of a request checked against the device's profile (size,
 * envelope, exchange, publish permission) and routed through the exchanges — no storage, no await.
 * What passes goes to the twin's outbox (outbox.ts) in one row for the whole request.
 */
import { bindingsFor } from "../../shared/bus/exchange";
import { DEAD_LETTER_QUEUE, findExchange } from "../../shared/bus/topology";
import type { Config } from "../../shared/config";
import { buildEnvelope } from "../../shared/envelope";
import { mayPublish } from "../../shared/permissions";
import type { Envelope } from "../../shared/schemas/message";
import type { IngestRequest, Rejection, TwinProfile } from "./types";

export interface Screened {
  /** The messages that passed, in input order (duplicates not yet removed). */
  candidates: Envelope[];
  rejected: Rejection[];
  /** Per input position: the message id, or null when the message was rejected. */
  ids: (string | null)[];
}

export function screen(request: IngestRequest, profile: TwinProfile, config: Config, now: number): Screened {
  const count = request.items.length;
  const rejected: Rejection[] = [...request.preRejected];
  const ids: (string | null)[] = new Array(count).fill(null);
  const candidates: Envelope[] = [];
  const preRejectedAt = new Set(request.preRejected.map((r) => r.index));
  const limits = { maxFutureSkewMs: config.MAX_FUTURE_SKEW_SECONDS * 1000, maxAgeMs: config.MAX_MESSAGE_AGE_DAYS * 86_400_000 };
  for (let index = 0; index < count; index++) {
    if (preRejectedAt.has(index)) continue;
    const item = request.items[index];
    const size = utf8Length(JSON.stringify(item) ?? "");
    if (size > config.MAX_MESSAGE_BYTES) {
      rejected.push({
        index,
        code: "message_too_large",
        issues: [{ path: "", message: `${size} bytes; the limit is ${config.MAX_MESSAGE_BYTES}` }],
      });
      continue;
    }
    const built = buildEnvelope(item, {
      principal: { id: profile.id, type: profile.type, room: profile.room, class: profile.class },
      defaultType: request.defaultType,
      allowedTypes: request.allowedTypes,
      exchange: request.exchange,
      now,
      limits,
      metadata: { transport: request.transport },
    });
    if (!built.ok) {
      rejected.push({ index, id: idOf(item), code: built.code, issues: built.issues });
      continue;
    }
    const message = built.envelope;
    if (!findExchange(message.exchange)) {
      rejected.push({
        index,
        id: message.id,
        code: "unknown_exchange",
        issues: [{ path: "exchange", message: `no exchange named "${message.exchange}"` }],
      });
      continue;
    }
    if (!mayPublish(profile.publish, message.exchange, message.routing_key)) {
      rejected.push({
        index,
        id: message.id,
        code: "forbidden",
        issues: [{ path: "routing_key", message: `"${profile.id}" may not publish ${message.exchange}:${message.routing_key}` }],
      });
      continue;
    }
    ids[index] = message.id;
    candidates.push(message);
  }
  return { candidates, rejected, ids };
}

/** The queues a message goes to; one no binding takes goes to the dead-letter queue as unroutable. */
export function routeOf(message: Envelope): string[] {
  const queues = bindingsFor(message.exchange, message.routing_key);
  return queues.length > 0 ? queues : [DEAD_LETTER_QUEUE];
}

const encoder = new TextEncoder();

/** Limits are in bytes, as the platform's are; a string's length counts UTF-16 units. */
export function utf8Length(text: string): number {
  return encoder.encode(text).byteLength;
}

function idOf(item: unknown): string | undefined {
  if (typeof item === "object" && item !== null && "id" in item && typeof item.id === "string") return item.id.slice(0, 128);
  return undefined;
}
