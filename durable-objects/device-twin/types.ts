/** The device twin's call and answer types (its RPC surface is index.ts). */
import type { ErrorCode, Issue } from "../../shared/error-codes";
import type { MessageType } from "../../shared/schemas/message";

/** What the registry tells a twin about its device. */
export interface TwinProfile {
  id: string;
  kind: "device" | "service";
  type: string;
  class: "mains" | "battery";
  room: string | null;
  publish: string[];
  rate: { per_second: number; burst: number };
  token_hash: string;
  /** The LAN agent that carries this device (registry `metadata.agent`): told of its commands and desired changes. */
  agent?: string | null;
}

export interface Rejection {
  index: number;
  id?: string;
  code: ErrorCode;
  issues: Issue[];
}

export interface IngestRequest {
  /** The device's secret, or null when the caller authenticated on its behalf (the LAN agent route). */
  secret: string | null;
  /**
   * Instead of the secret: the SHA-256 of the secret it was given, for an MQTT will published
   * after its connection ended (the session never stores a secret). A rotated token no longer matches.
   */
  credentialHash?: string;
  /** Every message of the request in order; positions named in `preRejected` hold null. */
  items: unknown[];
  /** Items the Worker could not even parse (NDJSON lines), rejected in the same answer. */
  preRejected: Rejection[];
  defaultType: MessageType;
  allowedTypes: MessageType[];
  exchange?: string;
  transport: "https" | "mqtt" | "agent";
}

export type Failure = { ok: false; code: ErrorCode; message: string; retryAfterSeconds?: number; issues?: Issue[] };

export type IngestOutcome =
  | {
      ok: true;
      accepted: number;
      duplicates: number;
      rejected: Rejection[];
      /** Per input position: the message id, or null when the message was rejected. */
      ids: (string | null)[];
      routed: Record<string, string[]>;
    }
  | Failure;

export interface RecentReading {
  at: string;
  metric: string;
  value: number | boolean;
  unit: string | null;
  message_id: string;
}

export const unauthorized: Failure = { ok: false, code: "unauthorized", message: "the device token is not valid" };
