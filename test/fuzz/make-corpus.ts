/**
 * Writes the committed fuzz corpus (test/fuzz/corpus/*.json): hostile requests, each with the
 * status and error code the edge must answer. Replayed inside workerd by test/workers/hostile-corpus.test.ts.
 * Rerun after changing a case: `node test/fuzz/make-corpus.ts`.
 *
 * Placeholders the replay fills in: {device} (a temperature sensor), {agent} (an agent) and
 * {bridged} (a device the agent bridges) in paths; `auth` picks the credential.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import type { CorpusCase } from "./corpus-case.ts";

const deep = (levels: number, open = "[", close = "]", inner = "0") => open.repeat(levels) + inner + close.repeat(levels);
const deepObject = (levels: number) => `${'{"a":'.repeat(levels)}1${"}".repeat(levels)}`;
const json = { "content-type": "application/json" };
const ndjson = { "content-type": "application/x-ndjson" };

const cases: CorpusCase[] = [];
const add = (c: CorpusCase) => cases.push(c);

// 1. Depth: 3,000 levels (≈ 18 KB) on every route that takes a body.
const deepBodies: [string, string, string, CorpusCase["auth"], (d: string) => string][] = [
  ["telemetry-payload", "POST", "/v1/telemetry", "device", (d) => `{"payload":{"temperature":${d}}}`],
  ["telemetry-metadata", "POST", "/v1/telemetry", "device", (d) => `{"payload":{"temperature":1},"metadata":{"x":${d}}}`],
  ["telemetry-array", "POST", "/v1/telemetry", "device", (d) => d],
  ["events", "POST", "/v1/events", "device", (d) => `{"payload":{"event":${d}}}`],
  ["publish", "POST", "/v1/exchanges/home.events/publish", "device", (d) => `{"payload":${d}}`],
  ["device-create", "POST", "/v1/devices", "admin", (d) => `{"id":"deep-1","type":"temperature","metadata":{"x":${d}}}`],
  ["device-patch", "PATCH", "/v1/devices/{device}", "admin", (d) => `{"metadata":{"x":${d}}}`],
  ["desired", "PATCH", "/v1/devices/{device}/twin/desired", "admin", (d) => `{"desired":{"x":${d}}}`],
  ["reported", "PATCH", "/v1/device/twin/reported", "device", (d) => `{"reported":{"x":${d}}}`],
  ["command", "POST", "/v1/devices/{device}/commands", "admin", (d) => `{"command":"set","parameters":{"x":${d}}}`],
  ["command-result", "POST", "/v1/device/commands/cmd-1/result", "device", (d) => `{"status":"succeeded","result":${d}}`],
  ["presence", "POST", "/v1/device/presence", "device", (d) => `{"status":${d}}`],
  ["room-command", "POST", "/v1/rooms/kitchen/commands", "admin", (d) => `{"command":"set","parameters":${d}}`],
  ["automation", "POST", "/api/automations", "admin", (d) => `{"name":"x","publish":{"data":${d}}}`],
  ["alert-rule", "POST", "/api/monitoring/alert_rules", "admin", (d) => `{"name":${d}}`],
  ["inference", "POST", "/v1/ai/infer", "admin", (d) => `{"model":"m","inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":${d}}]}`],
  ["agent-messages", "POST", "/v1/agent/messages", "agent", (d) => `{"messages":[{"device":"{bridged}","payload":${d}}]}`],
  ["agent-result", "POST", "/v1/agent/devices/{bridged}/commands/set/result", "agent", (d) => `{"status":"succeeded","result":${d}}`],
  ["dead-letter-replay", "POST", "/v1/dead-letters/replay", "admin", (d) => `{"ids":${d}}`],
  ["auth-token", "POST", "/v1/auth/token", "none", (d) => `{"grant_type":${d}}`],
];
for (const [name, method, path, auth, body] of deepBodies) {
  add({ name: `deep-${name}`, method, path, auth, headers: json, body: body(deep(3000)), expect: { status: 400, code: "too_deep" } });
}
add({
  name: "deep-objects-telemetry",
  method: "POST",
  path: "/v1/telemetry",
  auth: "device",
  headers: json,
  body: `{"payload":{"temperature":1},"metadata":${deepObject(3000)}}`,
  expect: { status: 400, code: "too_deep" },
});
// One deep NDJSON line is rejected alone; the good line is accepted.
add({
  name: "deep-ndjson-line",
  method: "POST",
  path: "/v1/telemetry",
  auth: "device",
  headers: ndjson,
  body: `{"payload":{"temperature":1}}\n{"payload":{"temperature":${deep(3000)}}}\n`,
  expect: { status: 202 },
});
// A bad secret with a deep body: an authentication failure, not a 400 (and counted).
for (const [name, path] of [
  ["telemetry", "/v1/telemetry"],
  ["reported", "/v1/device/twin/reported"],
  ["presence", "/v1/device/presence"],
] as const) {
  add({
    name: `bad-secret-deep-${name}`,
    method: name === "reported" ? "PATCH" : "POST",
    path,
    auth: "bad-device",
    headers: json,
    body: deep(3000),
    expect: { status: 401, code: "unauthorized" },
  });
}
add({
  name: "bad-agent-deep",
  method: "POST",
  path: "/v1/agent/messages",
  auth: "bad-agent",
  headers: json,
  body: deep(3000),
  expect: { status: 401, code: "unauthorized" },
});
// Breadth: one array with more entries than MAX_JSON_BREADTH (10,000).
add({
  name: "broad-array",
  method: "PATCH",
  path: "/v1/device/twin/reported",
  auth: "device",
  headers: json,
  body: `{"reported":{"x":[${Array(10_001).fill(0).join(",")}]}}`,
  expect: { status: 400, code: "too_deep", path: "reported.x" },
});

// 2. Prototype keys: rejected with the field named, never dropped.
const protoCases: [string, string, string, CorpusCase["auth"], string, string, string][] = [
  [
    "payload-proto",
    "POST",
    "/v1/telemetry",
    "device",
    `{"payload":{"temperature":21,"__proto__":5}}`,
    "invalid_payload",
    "payload.__proto__",
  ],
  ["payload-constructor", "POST", "/v1/telemetry", "device", `{"payload":{"constructor":5}}`, "invalid_payload", "payload.constructor"],
  [
    "payload-escaped-proto",
    "POST",
    "/v1/telemetry",
    "device",
    `{"payload":{"\\u005f_proto__":{"temperature":1}}}`,
    "invalid_payload",
    "payload.__proto__",
  ],
  [
    "metadata-proto",
    "POST",
    "/v1/telemetry",
    "device",
    `{"payload":{"temperature":1},"metadata":{"__proto__":{"x":1}}}`,
    "invalid_payload",
    "metadata.__proto__",
  ],
  [
    "device-create-proto",
    "POST",
    "/v1/devices",
    "admin",
    `{"id":"proto-1","type":"temperature","metadata":{"__proto__":{"x":1}}}`,
    "invalid_payload",
    "metadata.__proto__",
  ],
  [
    "device-create-prototype",
    "POST",
    "/v1/devices",
    "admin",
    `{"id":"proto-2","type":"temperature","metadata":{"prototype":1}}`,
    "invalid_payload",
    "metadata.prototype",
  ],
  [
    "desired-proto",
    "PATCH",
    "/v1/devices/{device}/twin/desired",
    "admin",
    `{"desired":{"__proto__":{"x":1}}}`,
    "invalid_payload",
    "desired.__proto__",
  ],
  [
    "reported-constructor",
    "PATCH",
    "/v1/device/twin/reported",
    "device",
    `{"reported":{"constructor":{"x":1}}}`,
    "invalid_payload",
    "reported.constructor",
  ],
  [
    "command-proto",
    "POST",
    "/v1/devices/{device}/commands",
    "admin",
    `{"command":"set","parameters":{"__proto__":1}}`,
    "invalid_payload",
    "parameters.__proto__",
  ],
  [
    "agent-proto",
    "POST",
    "/v1/agent/messages",
    "agent",
    `{"messages":[{"device":"{bridged}","payload":{"__proto__":1}}]}`,
    "invalid_payload",
    "messages.0.payload.__proto__",
  ],
];
for (const [name, method, path, auth, body, code, at] of protoCases) {
  add({ name: `proto-${name}`, method, path, auth, headers: json, body, expect: { status: 400, code, path: at } });
}
add({
  name: "proto-ndjson-line",
  method: "POST",
  path: "/v1/telemetry",
  auth: "device",
  headers: ndjson,
  body: `{"payload":{"temperature":1,"__proto__":2}}\n`,
  expect: { status: 400, code: "invalid_payload", path: "0.payload.__proto__" },
});
for (const [name, path, at] of [
  ["devices", "/v1/devices?__proto__=x", "__proto__"],
  ["devices-meta", "/v1/devices?meta.__proto__=x", "meta.__proto__"],
  ["devices-constructor", "/v1/devices?constructor=x", "constructor"],
  ["messages", "/v1/messages?prototype=1", "prototype"],
  ["errors", "/v1/devices/{device}/errors?__proto__=1", "__proto__"],
] as const) {
  add({ name: `query-${name}`, method: "GET", path, auth: "admin", expect: { status: 400, code: "invalid_query", path: at } });
}

// 3. Assorted malformed requests: never a 5xx.
const junk: [string, string, string, CorpusCase["auth"], Record<string, string>, string, number, string][] = [
  ["truncated", "POST", "/v1/telemetry", "device", json, `{"payload":{"temperature":`, 400, "invalid_json"],
  ["lone-surrogate", "POST", "/v1/telemetry", "device", json, `{"payload":{"temperature":1},"metadata":{"x":"\\ud800"}}`, 202, ""],
  ["nul-key", "POST", "/v1/telemetry", "device", json, `{"payload":{"temp\\u0000":1}}`, 400, "invalid_payload"],
  ["huge-number", "POST", "/v1/telemetry", "device", json, `{"payload":{"temperature":1e999}}`, 400, "invalid_payload"],
  ["unclosed-string", "POST", "/v1/telemetry", "device", json, `{"payload":{"temperature":"\\"}}`, 400, "invalid_json"],
  ["wrong-type", "POST", "/v1/telemetry", "device", { "content-type": "text/plain" }, `{}`, 415, "unsupported_media_type"],
  ["null-body", "POST", "/v1/telemetry", "device", json, `null`, 400, "invalid_payload"],
  ["empty-array", "POST", "/v1/telemetry", "device", json, `[]`, 400, "empty_batch"],
  ["string-body", "PATCH", "/v1/device/twin/reported", "device", json, `"x"`, 400, "invalid_payload"],
  ["deep-closers", "POST", "/v1/telemetry", "device", json, `]]]]]]]]}}}}}}`, 400, "invalid_json"],
  [
    "deep-strings",
    "POST",
    "/v1/telemetry",
    "device",
    json,
    `{"payload":{"temperature":1},"metadata":{"x":"${"[{".repeat(100)}"}}`,
    202,
    "",
  ],
];
for (const [name, method, path, auth, headers, body, status, code] of junk) {
  add({ name: `junk-${name}`, method, path, auth, headers, body, expect: code ? { status, code } : { status } });
}

// The agent's gzip bodies: a deep one, a bomb (inflates past MAX_BODY_BYTES), and a broken stream.
const gzipCases: [string, Buffer, number, string][] = [
  ["gzip-deep", gzipSync(`{"messages":[{"device":"{bridged}","payload":${deep(3000)}}]}`), 400, "too_deep"],
  ["gzip-bomb", gzipSync(Buffer.alloc(8 * 1_048_576, 0x20)), 413, "payload_too_large"],
  ["gzip-proto", gzipSync(`{"messages":[{"device":"{bridged}","payload":{"__proto__":{"a":1}}}]}`), 400, "invalid_payload"],
  ["gzip-broken", Buffer.from("1f8b0800000000000003ffffffff", "hex"), 400, "invalid_json"],
];
for (const [name, bytes, status, code] of gzipCases) {
  add({
    name: `agent-${name}`,
    method: "POST",
    path: "/v1/agent/messages",
    auth: "agent",
    headers: { ...json, "content-encoding": "gzip" },
    body_base64: bytes.toString("base64"),
    expect: { status, code },
  });
}
// A bad credential with the wrong content type: counted as an authentication failure, not a 415.
add({
  name: "bad-secret-wrong-type",
  method: "POST",
  path: "/v1/telemetry",
  auth: "bad-device",
  headers: { "content-type": "text/plain" },
  body: "x",
  expect: { status: 401, code: "unauthorized" },
});

const dir = join(import.meta.dirname, "corpus");
mkdirSync(dir, { recursive: true });
for (const file of readdirSync(dir)) if (file.endsWith(".json")) rmSync(join(dir, file));
for (const c of cases) writeFileSync(join(dir, `${c.name}.json`), `${JSON.stringify(c)}\n`);
// In the project's format, so that `biome check` passes on the committed files.
spawnSync(process.execPath, [join(import.meta.dirname, "../../node_modules/@biomejs/biome/bin/biome"), "format", "--write", dir], {
  stdio: "ignore",
});
console.log(`wrote ${cases.length} cases to ${dir}`);
