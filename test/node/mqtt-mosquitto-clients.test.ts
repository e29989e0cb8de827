/**
 * A third, independent MQTT implementation against the local edge: Debian's mosquitto_pub and
 * mosquitto_sub (package mosquitto-clients; scripts/mqtt-interop-clients.sh installs it), MQTT
 * 3.1.1 and 5.0. They speak TCP only, so they reach the gateway's WebSocket through a small
 * TCP → WebSocket bridge (mqtt-ws-proxy.ts). Covered: connect, QoS 0/1/2, retained messages, the
 * last will, a resumed persistent session, a command received and answered, a denied publish.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalEdge, PROJECT_ROOT, startLocalEdge } from "../../scripts/lib/local-edge.ts";
import { until } from "../../scripts/lib/wait.ts";
import { startWsProxy, type WsProxy } from "./mqtt-ws-proxy.ts";

let edge: LocalEdge;
const proxies: WsProxy[] = [];

beforeAll(async () => {
  if (spawnSync("mosquitto_pub", ["--help"]).error) {
    const made = spawnSync("bash", [join(PROJECT_ROOT, "scripts/mqtt-interop-clients.sh")], { encoding: "utf8" });
    if (made.status !== 0) throw new Error(`mosquitto-clients missing and scripts/mqtt-interop-clients.sh failed: ${made.stderr}`);
  }
  edge = await startLocalEdge();
});

afterAll(async () => {
  for (const proxy of proxies) await proxy.close();
  await edge?.stop();
});

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a mosquitto client to its end (or kills it after timeoutMs). */
function run(command: string, args: string[], timeoutMs = 20_000): Promise<Run> {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
  return finished(child, timeoutMs);
}

function finished(child: ChildProcess, timeoutMs: number): Promise<Run> {
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

let n = 0;
async function newDevice(): Promise<{ id: string; token: string; port: number }> {
  const id = `mosq-${Date.now().toString(36)}-${++n}`;
  const created = await edge.admin<{ token: string }>("POST", "/v1/devices", { id, type: "climate", room: "lab" });
  expect(created.status).toBe(201);
  const proxy = await startWsProxy(`ws://127.0.0.1:${edge.port}/mqtt/${id}`);
  proxies.push(proxy);
  return { id, token: created.body.token, port: proxy.port };
}

async function twin(id: string) {
  return (
    await edge.admin<{ reported: { readings: Record<string, { value: unknown }> }; availability: { status: string; reason: string } }>(
      "GET",
      `/v1/devices/${id}/twin`,
    )
  ).body;
}

/** The twin is online once the gateway accepted the CONNECT (the will is stored by then). */
async function online(id: string): Promise<void> {
  await until(async () => ((await twin(id)).availability.status === "online" ? true : undefined), "online", 15_000);
}

for (const [label, version] of [
  ["3.1.1", "mqttv311"],
  ["5.0", "5"],
] as const) {
  describe(`mosquitto_pub / mosquitto_sub, MQTT ${label}`, () => {
    const common = (d: { id: string; token: string; port: number }, clientId = d.id) => [
      "-h",
      "127.0.0.1",
      "-p",
      String(d.port),
      "-V",
      version,
      "-i",
      clientId,
      "-u",
      d.id,
      "-P",
      d.token,
    ];

    it("connects and publishes at QoS 0, 1 and 2; the readings reach the twin", async () => {
      const d = await newDevice();
      for (const [qos, reading] of [
        [0, '{"temperature":19.5}'],
        [1, '{"humidity":44}'],
        [2, '{"battery":66}'],
      ] as const) {
        const pub = await run("mosquitto_pub", [...common(d), "-q", String(qos), "-t", `devices/${d.id}/telemetry`, "-m", reading]);
        expect(pub.status, pub.stderr).toBe(0);
      }
      const readings = await until(async () => {
        const t = await twin(d.id);
        return Object.keys(t.reported.readings).length === 3 ? t.reported.readings : undefined;
      }, "three readings");
      expect(readings).toMatchObject({ temperature: { value: 19.5 }, humidity: { value: 44 }, battery: { value: 66 } });
    });

    it("a retained message reaches a later subscriber with the retain flag", async () => {
      const d = await newDevice();
      const pub = await run("mosquitto_pub", [...common(d), "-q", "1", "-r", "-t", `devices/${d.id}/state/relay`, "-m", "on"]);
      expect(pub.status, pub.stderr).toBe(0);
      const sub = await run("mosquitto_sub", [
        ...common(d, `${d.id}-reader`),
        "-t",
        `devices/${d.id}/state/#`,
        "-C",
        "1",
        "-W",
        "10",
        "-F",
        "%r %t %p",
      ]);
      expect(sub.status, sub.stderr).toBe(0);
      expect(sub.stdout.trim()).toBe(`1 devices/${d.id}/state/relay on`);
    });

    it("receives a command at QoS 2 and answers it", async () => {
      const d = await newDevice();
      const child = spawn("mosquitto_sub", [...common(d), "-q", "2", "-t", `devices/${d.id}/commands`, "-C", "1", "-W", "20", "-d"], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      const done = finished(child, 25_000);
      // (Its debug output is buffered until it exits: the twin says when it is connected.)
      await online(d.id);
      const sent = await edge.admin<{ command: { id: string } }>("POST", `/v1/devices/${d.id}/commands`, { command: "blink" });
      const sub = await done;
      expect(sub.status, sub.stderr).toBe(0);
      expect(sub.stdout).toContain("PUBREL");
      const payload = sub.stdout.split("\n").find((line) => line.startsWith("{")) ?? "";
      expect(JSON.parse(payload)).toMatchObject({ id: sent.body.command.id, command: "blink" });
      const answer = await run("mosquitto_pub", [
        ...common(d, `${d.id}-answer`),
        "-q",
        "1",
        "-t",
        `devices/${d.id}/commands/${sent.body.command.id}/result`,
        "-m",
        '{"status":"succeeded"}',
      ]);
      expect(answer.status, answer.stderr).toBe(0);
      const status = await edge.admin<{ command: { status: string } }>("GET", `/v1/devices/${d.id}/commands/${sent.body.command.id}`);
      expect(status.body.command.status).toBe("succeeded");
    });

    it("the last will of a killed client is published (retained) and the twin goes offline", async () => {
      const d = await newDevice();
      const status = `devices/${d.id}/status`;
      const child = spawn(
        "mosquitto_sub",
        [
          ...common(d, `${d.id}-will`),
          "-t",
          `devices/${d.id}/commands`,
          "--will-topic",
          status,
          "--will-payload",
          "offline",
          "--will-qos",
          "1",
          "--will-retain",
          "-d",
        ],
        { stdio: ["ignore", "pipe", "pipe"] },
      );
      await online(d.id);
      child.kill("SIGKILL");
      const t = await until(async () => {
        const current = await twin(d.id);
        return current.availability.status === "offline" ? current : undefined;
      }, "offline");
      expect(t.availability.reason).toBe("last_will");
      const sub = await run("mosquitto_sub", [...common(d, `${d.id}-reader`), "-t", status, "-C", "1", "-W", "10", "-F", "%r %p"]);
      expect(sub.stdout.trim()).toBe("1 offline");
    });

    it("a persistent session resumes: a command queued while away arrives on the stored subscription", async () => {
      const d = await newDevice();
      const persistent = [...common(d, `${d.id}-p`), "-c", ...(version === "5" ? ["-x", "300"] : [])];
      // Subscribe, then leave (the -W timeout ends with a DISCONNECT; the session stays).
      const first = await run("mosquitto_sub", [...persistent, "-q", "1", "-t", `devices/${d.id}/commands`, "-W", "2"], 15_000);
      expect(first.stdout).toBe("");
      const sent = await edge.admin<{ command: { id: string } }>("POST", `/v1/devices/${d.id}/commands`, { command: "reboot" });
      // Back, subscribed only to an unrelated topic: the command comes through the resumed subscription.
      const again = await run(
        "mosquitto_sub",
        [...persistent, "-q", "1", "-t", `devices/${d.id}/unrelated`, "-C", "1", "-W", "15"],
        20_000,
      );
      expect(again.status, again.stderr).toBe(0);
      expect(JSON.parse(again.stdout.trim())).toMatchObject({ id: sent.body.command.id, command: "reboot" });
    });

    it("a publish to another device's topic is denied", async () => {
      const d = await newDevice();
      const pub = await run("mosquitto_pub", [...common(d), "-q", "1", "-t", "devices/someone-else/telemetry", "-m", "{}", "-d"]);
      if (version === "5") {
        // v5: PUBACK 0x87 Not authorized, the connection stays up to its DISCONNECT.
        expect(pub.stdout).toMatch(/PUBACK \(Mid: 1, RC:135\)/);
      } else {
        // 3.1.1 has no negative acknowledgement: the gateway closes the connection, no PUBACK.
        expect(pub.stdout).not.toMatch(/received PUBACK/);
        expect(pub.status).not.toBe(0);
      }
      expect(edge.log()).not.toContain("mqtt gateway failure");
    });
  });
}
