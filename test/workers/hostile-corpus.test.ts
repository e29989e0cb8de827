/**
 * Replays the committed fuzz corpus (test/fuzz/corpus/*.json, written by test/fuzz/make-corpus.ts)
 * against the real Worker inside workerd: no request of any shape gets a 5xx, and each gets the
 * status and error code (and field) its case names.
 */
import { beforeAll, describe, expect, it } from "vitest";
import type { CorpusCase } from "../fuzz/corpus-case";
import { ADMIN, call, createDevice, uniqueId, uniqueIp } from "./helpers";

declare global {
  interface ImportMeta {
    /** Vite's static import of many files (the corpus is bundled into the test at build time). */
    glob<T>(pattern: string, options: { eager: true; import: "default" }): Record<string, T>;
  }
}

const corpus = Object.values(import.meta.glob<CorpusCase>("../fuzz/corpus/*.json", { eager: true, import: "default" }));

let device: { id: string; token: string };
let agent: { id: string; token: string };
let bridged: string;

beforeAll(async () => {
  const sensor = await createDevice({ id: uniqueId("fuzz"), type: "temperature", room: "kitchen" });
  device = { id: sensor.device.id, token: sensor.token };
  const a = await createDevice({ id: uniqueId("fuzz-agent"), kind: "service", type: "agent" });
  agent = { id: a.device.id, token: a.token };
  bridged = (await createDevice({ id: uniqueId("fuzz-meter"), type: "energy", metadata: { agent: agent.id } })).device.id;
});

function credential(auth: CorpusCase["auth"]): Record<string, string> {
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  switch (auth) {
    case "device":
      return bearer(device.token);
    case "bad-device":
      return bearer(`${device.id}.${"x".repeat(43)}`);
    case "agent":
      return bearer(agent.token);
    case "bad-agent":
      return bearer(`${agent.id}.${"x".repeat(43)}`);
    case "admin":
      return ADMIN;
    case "none":
      return {};
  }
}

async function replay(c: CorpusCase): Promise<Response> {
  const fill = (s: string) => s.replaceAll("{device}", device.id).replaceAll("{agent}", agent.id).replaceAll("{bridged}", bridged);
  return call(fill(c.path), {
    method: c.method,
    headers: { ...credential(c.auth), "cf-connecting-ip": uniqueIp(), ...c.headers },
    ...(c.body !== undefined && { body: fill(c.body) }),
    ...(c.body_base64 !== undefined && { body: Uint8Array.from(atob(c.body_base64), (ch) => ch.charCodeAt(0)) }),
  });
}

describe("the fuzz corpus", () => {
  it("holds hostile cases", () => expect(corpus.length).toBeGreaterThan(40));

  it.each(corpus.map((c) => [c.name, c] as const))("%s", async (_, c) => {
    const res = await replay(c);
    const text = await res.text();
    expect(res.status, text.slice(0, 300)).toBeLessThan(500);
    expect(res.status, text.slice(0, 300)).toBe(c.expect.status);
    if (c.expect.code) {
      const body = JSON.parse(text) as { error: { code: string; issues: { path: string }[] } };
      expect(body.error.code).toBe(c.expect.code);
      if (c.expect.path) expect(body.error.issues.map((i) => i.path)).toContain(c.expect.path);
    }
  });
});
