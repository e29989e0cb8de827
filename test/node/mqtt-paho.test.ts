/**
 * A second, independent MQTT implementation against the local edge: Eclipse Paho for Python
 * (test/node/paho_client.py), 3.1.1 and 5.0 over WebSocket. Uses Debian's python3-paho-mqtt when
 * it is installed (.ci/run), else installs paho-mqtt from PyPI into a venv under node_modules/.cache.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalEdge, PROJECT_ROOT, startLocalEdge } from "../../scripts/lib/local-edge.ts";

let edge: LocalEdge;
let python: string;

function pahoPython(): string {
  if (spawnSync("python3", ["-c", "import paho.mqtt.client"]).status === 0) return "python3";
  const venv = join(PROJECT_ROOT, "node_modules/.cache/paho-venv");
  const bin = join(venv, "bin/python");
  if (!existsSync(bin) || spawnSync(bin, ["-c", "import paho.mqtt.client"]).status !== 0) {
    mkdirSync(join(PROJECT_ROOT, "node_modules/.cache"), { recursive: true });
    const made = spawnSync("python3", ["-m", "venv", venv], { encoding: "utf8" });
    if (made.status !== 0) throw new Error(`python3 -m venv failed: ${made.stderr}`);
    const pip = spawnSync(join(venv, "bin/pip"), ["install", "-q", "paho-mqtt>=2,<3"], { encoding: "utf8" });
    if (pip.status !== 0) throw new Error(`pip install paho-mqtt failed (or install python3-paho-mqtt): ${pip.stderr}`);
  }
  return bin;
}

beforeAll(async () => {
  python = pahoPython();
  edge = await startLocalEdge();
});

afterAll(async () => {
  await edge?.stop();
});

describe("Eclipse Paho (Python) against the local edge", () => {
  for (const version of ["3.1.1", "5"] as const) {
    it(`MQTT ${version}: QoS 0/1/2, a command at QoS 2 answered, retained messages, the last will`, async () => {
      const id = `paho-${version.replaceAll(".", "")}-${Date.now().toString(36)}`;
      const created = await edge.admin<{ token: string }>("POST", "/v1/devices", { id, type: "climate", room: "lab" });
      expect(created.status).toBe(201);
      const run = spawnSync(
        python,
        [join(import.meta.dirname, "paho_client.py"), String(edge.port), id, created.body.token, edge.adminToken, version],
        {
          encoding: "utf8",
          timeout: 60_000,
        },
      );
      expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(0);
      const steps = run.stdout
        .trim()
        .split("\n")
        .map((line) => (JSON.parse(line) as { step: string }).step);
      expect(steps).toEqual(["connected", "published", "answered", "retained", "will_connected", "dropped", "retained_read"]);

      const twin = async () =>
        (
          await edge.admin<{
            reported: { readings: Record<string, { value: unknown }> };
          }>("GET", `/v1/devices/${id}/twin`)
        ).body;
      // The will itself is proven by the retained "offline" the reader got (step retained_read).
      const current = await twin();
      expect(Object.keys(current.reported.readings).sort()).toEqual(["battery", "humidity", "temperature"]);
      const commands = await edge.admin<{ commands: { status: string }[] }>("GET", `/v1/devices/${id}/commands`);
      expect(commands.body.commands.map((c) => c.status)).toEqual(["succeeded"]);
    });
  }
});
