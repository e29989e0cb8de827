import { v7 as uuidv7 } from "uuid";

/** Message ids a sender may choose: printable, no separators that would confuse logs or keys. */
export const MESSAGE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** Device ids: lowercase, so `Kitchen` and `kitchen` are never two devices. */
export const DEVICE_ID_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/** Time-ordered ids, so that ids sort like the messages arrived. */
export function newMessageId(): string {
  return uuidv7();
}

const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

/**
 * A stable id derived from other ids (a UUID of version 8 shape), so that a stage that re-emits
 * a message (the transformer, a replay) emits the same id every time it runs: downstream sinks
 * are idempotent on ids, which makes the whole path idempotent.
 */
export async function derivedId(...parts: string[]): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(parts.join("\u001f"))));
  const b = digest.slice(0, 16);
  b[6] = ((b[6] ?? 0) & 0x0f) | 0x80;
  b[8] = ((b[8] ?? 0) & 0x3f) | 0x80;
  const h = hex(b);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export async function sha256Hex(text: string): Promise<string> {
  return hex(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text))));
}

/** A random secret of 32 bytes, base64url: 256 bits, so a fast hash is enough to store it. */
export function newSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...bytes))
    .replaceAll("+", "-")
    .replaceAll("/", "_")
    .replace(/=+$/, "");
}
