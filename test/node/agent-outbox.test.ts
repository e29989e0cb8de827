/** The agent's disk outbox (real node:sqlite files) and its configuration file and CLI. */
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "../../agent/config.ts";
import { OffsetTracker } from "../../agent/kafka.ts";
import { convert } from "../../agent/lan-message.ts";
import { Outbox } from "../../agent/outbox.ts";
import { PROJECT_ROOT } from "../../scripts/lib/local-edge.ts";

const fresh = (options: Partial<ConstructorParameters<typeof Outbox>[0]> = {}) =>
  new Outbox({
    path: join(mkdtempSync(join(tmpdir(), "outbox-")), "outbox.db"),
    maxMessages: 1000,
    maxBytes: 1 << 20,
    whenFull: "backpressure",
    sync: "full",
    ...options,
  });

describe("outbox", () => {
  it("holds each id once and hands messages out in arrival order", () => {
    const outbox = fresh();
    for (let i = 0; i < 5; i++) expect(outbox.add(`m-${i}`, "meter1", `{"n":${i}}`)).toBe("added");
    expect(outbox.add("m-2", "meter1", `{"n":2}`)).toBe("duplicate");
    expect(outbox.depth).toBe(5);
    expect(outbox.peek(3).map((m) => m.id)).toEqual(["m-0", "m-1", "m-2"]);
    outbox.close();
  });

  it("survives closing and reopening the file with what was not removed", () => {
    const dir = mkdtempSync(join(tmpdir(), "outbox-"));
    const options = {
      path: join(dir, "o.db"),
      maxMessages: 100,
      maxBytes: 1 << 20,
      whenFull: "backpressure" as const,
      sync: "full" as const,
    };
    const first = new Outbox(options);
    for (let i = 0; i < 5; i++) first.add(`m-${i}`, "meter1", `{"n":${i}}`);
    first.remove(first.peek(2).map((m) => m.seq));
    first.close();
    const again = new Outbox(options);
    expect(again.depth).toBe(3);
    expect(again.peek(10).map((m) => m.id)).toEqual(["m-2", "m-3", "m-4"]);
    again.close();
  });

  it("backpressure: refuses a message past the bound and takes it once there is room", () => {
    const outbox = fresh({ maxMessages: 3 });
    for (let i = 0; i < 3; i++) expect(outbox.add(`m-${i}`, "d", "{}")).toBe("added");
    expect(outbox.add("m-3", "d", "{}")).toBe("full");
    expect(outbox.depth).toBe(3);
    outbox.remove([outbox.peek(1)[0]?.seq ?? 0]);
    expect(outbox.add("m-3", "d", "{}")).toBe("added");
    expect(outbox.peek(10).map((m) => m.id)).toEqual(["m-1", "m-2", "m-3"]);
    expect(outbox.dropped).toBe(0);
  });

  it("drop_oldest: makes room by deleting the oldest, counted, also by bytes", () => {
    const outbox = fresh({ maxMessages: 3, whenFull: "drop_oldest" });
    for (let i = 0; i < 5; i++) expect(outbox.add(`m-${i}`, "d", "{}")).toBe("added");
    expect(outbox.peek(10).map((m) => m.id)).toEqual(["m-2", "m-3", "m-4"]);
    expect(outbox.dropped).toBe(2);
    const bytes = fresh({ maxBytes: 1024, whenFull: "drop_oldest" });
    const body = "x".repeat(300);
    for (let i = 0; i < 5; i++) bytes.add(`b-${i}`, "d", body);
    expect(bytes.depth).toBe(3);
    expect(bytes.bytes).toBeLessThanOrEqual(1024);
    expect(bytes.peek(10).map((m) => m.id)).toEqual(["b-2", "b-3", "b-4"]);
  });
});

describe("LAN message conversion", () => {
  const rules = parseConfig(
    `edge: {url: "http://e", token_env: T}\noutbox: {path: o.db}\nmqtt:\n  url: mqtt://b\n  rules:\n    - {topic: homelab/energy/+, routing_key: "sensors.energy.{1}", device: "{1}"}\n    - {topic: "homelab/heatpump/#", routing_key: "sensors.heatpump.{#}", device: heatpump}\n`,
  ).mqtt.rules;
  const source = { agent: "lan-agent", broker: "mqtt://b" };

  it("maps seed 004's topics, keeps the device's time, enriches, and derives a stable id", async () => {
    const raw = Buffer.from(JSON.stringify({ timestamp: "2026-01-03T16:00:00Z", total_energy_kwh: 12.45, power_kw: 3.2, status: "ok" }));
    const a = await convert("homelab/energy/meter1", raw, rules, source);
    const b = await convert("homelab/energy/meter1", raw, rules, source);
    if (!a.ok || !b.ok) throw new Error("not converted");
    expect(a.message).toMatchObject({
      device: "meter1",
      routing_key: "sensors.energy.meter1",
      timestamp: "2026-01-03T16:00:00.000Z",
      payload: { total_energy_kwh: 12.45, power_kw: 3.2 },
      metadata: { source_topic: "homelab/energy/meter1", agent: "lan-agent" },
    });
    expect(a.message.id).toBe(b.message.id);
    const heat = await convert("homelab/heatpump/outdoor/temp", Buffer.from("7.5"), rules, source);
    expect(heat.ok && heat.message).toMatchObject({
      device: "heatpump",
      routing_key: "sensors.heatpump.outdoor.temp",
      payload: { temp: 7.5 },
    });
  });

  it("reports unmapped topics and invalid payloads with the reason", async () => {
    expect(await convert("other/topic", Buffer.from("{}"), rules, source)).toMatchObject({ ok: false, reason: "unmapped" });
    const bad = await convert("homelab/energy/meter1", Buffer.from('{"Power": 1}'), rules, source);
    expect(bad).toMatchObject({ ok: false, reason: "invalid", device: "meter1" });
  });
});

describe("configuration", () => {
  const valid = `edge:\n  url: https://edge.example\n  token_env: EDGEMESH_AGENT_TOKEN\noutbox:\n  path: outbox.db\nmqtt:\n  url: mqtt://127.0.0.1:1883\n  rules:\n    - topic: homelab/energy/+\n      routing_key: sensors.energy.{1}\n      device: "{1}"\n`;

  it("fills defaults", () => {
    const config = parseConfig(valid, "/var/lib/agent");
    expect(config.outbox).toMatchObject({ path: "/var/lib/agent/outbox.db", when_full: "backpressure", sync: "full" });
    expect(config.mqtt.commands.set_topic).toBe("homelab/{device}/set");
  });

  it("names the bad key", () => {
    const cases: [string, RegExp][] = [
      [valid.replace("https://edge.example", "ftp://x"), /^edge\.url: /m],
      [valid.replace('device: "{1}"', "devise: x"), /mqtt\.rules\.0/],
      [`${valid}  commands:\n    set_topic: no-device-here\n`, /^mqtt\.commands\.set_topic: must contain \{device\}/m],
      [valid.replace("path: outbox.db", "path: outbox.db\n  when_full: panic"), /^outbox\.when_full: /m],
      [`${valid}health:\n  listen: "9464"\n`, /^health\.listen: must be host:port/m],
    ];
    for (const [text, message] of cases) {
      expect(() => parseConfig(text)).toThrow(ConfigError);
      expect(() => parseConfig(text)).toThrow(message);
    }
  });

  it("check-config exits 0 on a good file and 78 naming the key on a bad one", () => {
    const dir = mkdtempSync(join(tmpdir(), "agent-config-"));
    const good = join(dir, "good.yaml");
    const bad = join(dir, "bad.yaml");
    writeFileSync(good, valid);
    writeFileSync(bad, valid.replace("rules:", "rulez:"));
    const run = (file: string) =>
      spawnSync(process.execPath, [join(PROJECT_ROOT, "agent/main.ts"), "check-config", "--config", file], {
        encoding: "utf8",
        env: { ...process.env, EDGEMESH_AGENT_TOKEN: "lan-agent.0123456789abcdef0123456789abcdef" },
      });
    const ok = run(good);
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/ok \(1 rules/);
    const failed = run(bad);
    expect(failed.status).toBe(78);
    expect(failed.stderr).toMatch(/mqtt: .*rulez/);
    // Rules may be left out only when adapters carry the devices.
    writeFileSync(bad, valid.slice(0, valid.indexOf("  rules:")));
    const none = run(bad);
    expect(none.status, none.stdout).toBe(78);
    expect(none.stderr).toMatch(/mqtt\.rules: give at least one rule, or use adapters/);
  });
});

describe("Kafka offset tracking", () => {
  it("commits only up to the first record the edge has not acknowledged", () => {
    const tracker = new OffsetTracker();
    for (let offset = 0; offset < 4; offset++) tracker.track(`id-${offset}`, "t", 0, String(offset));
    // Acknowledged out of order: 1 and 2 first, 0 still waiting.
    expect(tracker.acknowledge(["id-1", "id-2"])).toEqual([{ topic: "t", partition: 0, offset: "0" }]);
    expect(tracker.acknowledge(["id-0"])).toEqual([{ topic: "t", partition: 0, offset: "3" }]);
    expect(tracker.acknowledge(["id-3"])).toEqual([{ topic: "t", partition: 0, offset: "4" }]);
    expect(tracker.acknowledge(["unknown"])).toEqual([]);
    expect(tracker.pending).toBe(0);
  });
});
