/**
 * A second, independent MQTT implementation against the local edge: Eclipse Paho for Python
 * (test/node/paho_client.py), 3.1.1 and 5.0 over WebSocket, callback API v2 (paho-mqtt >= 2).
 * Debian bookworm's python3-paho-mqtt is 1.6, so it uses the venv scripts/mqtt-interop-clients.sh
 * makes at ~/.cache/edgemesh/paho-venv (and runs that script when the venv is missing).
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalEdge, PROJECT_ROOT, startLocalEdge } from "../../scripts/lib/local-edge.ts";

let edge: LocalEdge;
let python: string;

const PAHO_CHECK = "import sys, paho.mqtt; sys.exit(int(paho.mqtt.__version__.split('.')[0]) < 2)";

function pahoPython(): string {
  const bin = join(homedir(), ".cache/edgemesh/paho-venv/bin/python");
  if (!existsSync(bin) || spawnSync(bin, ["-c", PAHO_CHECK]).status !== 0) {
    const made = spawnSync("bash", [join(PROJECT_ROOT, "scripts/mqtt-interop-clients.sh")], { encoding: "utf8" });
    if (made.status !== 0) throw new Error(`scripts/mqtt-interop-clients.sh failed: ${made.stderr}`);
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
    it(`MQTT ${version}: QoS 0/1/2, a command at QoS 2 answered, retained messages, the last will, a resumed session, a denied publish`, async () => {
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
      expect(steps).toEqual([
        "connected",
        "published",
        "answered",
        "retained",
        "will_connected",
        "dropped",
        "retained_read",
        "resumed",
        "denied",
      ]);

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
      // The blink command answered; the reboot delivered on the resumed session, not answered.
      expect(commands.body.commands.map((c) => c.status).sort()).toEqual(["delivered", "succeeded"]);
    });
  }
});
