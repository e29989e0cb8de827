/**
 * Device credentials: `<device-id>.<secret>`. The id half lets the Worker go straight to the
 * device's Durable Object (no shared database on the ingest path); the secret half is 256 random
 * bits, stored only as its SHA-256. A slow password hash would add nothing against guessing a
 * 256-bit secret and would cost CPU on every message.
 */
import { DEVICE_ID_PATTERN, newSecret, sha256Hex } from "./ids";

export interface ParsedToken {
  deviceId: string;
  secret: string;
}

export function parseDeviceToken(token: string): ParsedToken | undefined {
  const dot = token.indexOf(".");
  if (dot <= 0 || token.length > 256) return undefined;
  const deviceId = token.slice(0, dot);
  const secret = token.slice(dot + 1);
  if (!DEVICE_ID_PATTERN.test(deviceId) || secret.length < 16) return undefined;
  return { deviceId, secret };
}

export function bearerToken(header: string | undefined | null): string | undefined {
  if (!header) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

export async function issueDeviceToken(deviceId: string): Promise<{ token: string; hash: string }> {
  const secret = newSecret();
  return { token: `${deviceId}.${secret}`, hash: await sha256Hex(secret) };
}

/** Compares a presented secret with a stored hash in time independent of where they differ. */
export async function secretMatches(secret: string, storedHash: string): Promise<boolean> {
  const presented = new TextEncoder().encode(await sha256Hex(secret));
  const stored = new TextEncoder().encode(storedHash);
  if (presented.byteLength !== stored.byteLength) return false;
  return crypto.subtle.timingSafeEqual(presented, stored);
}
