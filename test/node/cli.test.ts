/**
 * The edgemesh CLI (tools/cli) as an operator runs it — `node tools/cli/main.ts …` in a child
 * process — against the local edge (a real `wrangler dev`): real HTTP, and the real /v1/live
 * WebSocket for `tail`. Human tables, --json, and the exit codes.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalEdge, PROJECT_ROOT, startLocalEdge } from "../../scripts/lib/local-edge.ts";
import { until } from "../../scripts/lib/wait.ts";
import { main } from "../../tools/cli/main.ts";

const CLI = join(PROJECT_ROOT, "tools/cli/main.ts");
const HOME = mkdtempSync(join(tmpdir(), "edgemesh-cli-home-"));

let edge: LocalEdge;

beforeAll(async () => {
  edge = await startLocalEdge();
});

afterAll(async () => {
  await edge?.stop();
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function start(
  args: string[],
  env: Record<string, string | undefined> = {},
): { child: ChildProcess; done: Promise<Run>; stderr: () => string } {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: PROJECT_ROOT,
    // HOME points at an empty folder: no operator's config file leaks into the test.
    env: { ...process.env, HOME, XDG_CONFIG_HOME: undefined, EDGEMESH_URL: edge.url, EDGEMESH_TOKEN: edge.adminToken, ...env },
    stdio: [args.includes("--token-stdin") ? "pipe" : "ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr?.on("data", (c: Buffer) => (stderr += c.toString()));
  const done = new Promise<Run>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
  return { child, done, stderr: () => stderr };
}

const cli = (args: string[], env?: Record<string, string | undefined>) => start(args, env).done;

async function json<T>(args: string[], env?: Record<string, string | undefined>): Promise<T> {
  const run = await cli([...args, "--json"], env);
  if (run.code !== 0) throw new Error(`edgemesh ${args.join(" ")} exited ${run.code}: ${run.stderr}`);
  return JSON.parse(run.stdout) as T;
}

let n = 0;
const uniqueId = (prefix: string) => `${prefix}-${Date.now().toString(36)}-${++n}`;

async function postTelemetry(token: string, payload: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  const res = await fetch(`${edge.url}/v1/telemetry`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ payload, ...extra }),
  });
  return res.status;
}

describe("edgemesh --help", () => {
  it("every command answers --help with its usage and exit code 0; no command is a usage error (2)", async () => {
    const paths = [
      ["devices", "add"],
      ["devices", "list"],
      ["devices", "show"],
      ["devices", "update"],
      ["devices", "rotate"],
      ["devices", "remove"],
      ["devices", "errors"],
      ["rooms", "list"],
      ["rooms", "show"],
      ["rooms", "add"],
      ["rooms", "remove"],
      ["rooms", "assign"],
      ["rooms", "unassign"],
      ["rooms", "command"],
      ["commands", "send"],
      ["commands", "watch"],
      ["commands", "list"],
      ["commands", "show"],
      ["dead-letters", "list"],
      ["dead-letters", "replay"],
      ["tokens", "issue"],
      ["tokens", "access"],
      ["config", "set"],
      ["config", "show"],
      ["tail"],
      ["devices"],
      ["archive"],
      [],
    ];
    for (const path of paths) {
      let out = "";
      const code = await main([...path, "--help"], { stdout: (t) => (out += t), stderr: () => {}, env: {}, tty: false });
      expect(code, path.join(" ")).toBe(0);
      expect(out, path.join(" ")).toMatch(/Usage: /);
    }
    const top = await cli([]);
    expect(top.code).toBe(2);
    expect(top.stdout).toContain("Exit codes:");
    const unknown = await cli(["devices", "explode"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no command "devices explode"');
    const badFlag = await cli(["devices", "list", "--colour"]);
    expect(badFlag.code).toBe(2);
  });
});

describe("edgemesh against the local edge", () => {
  it("devices: add prints the token once, list and show (with the twin), rotate, remove", async () => {
    const id = uniqueId("cli-thermo");
    const added = await cli(["devices", "add", id, "--type", "temperature", "--room", "cli-lab", "--meta", "floor=1"]);
    expect(added.code).toBe(0);
    const token = /\n([A-Za-z0-9._~+/=-]{20,})\s*$/.exec(added.stdout)?.[1];
    expect(token, added.stdout).toBeDefined();
    expect(await postTelemetry(token as string, { temperature: 21.5 })).toBe(202);

    const listed = await json<{ devices: { id: string; room: string; metadata: Record<string, unknown> }[] }>([
      "devices",
      "list",
      "--room",
      "cli-lab",
    ]);
    expect(listed.devices.find((d) => d.id === id)).toMatchObject({ room: "cli-lab", metadata: { floor: "1" } });
    const table = await cli(["devices", "list", "--meta", "floor=1"]);
    expect(table.stdout).toMatch(/^ID\s+TYPE\s+ROOM/);
    expect(table.stdout).toContain(id);
    expect(table.stdout).not.toContain(token);

    const shown = await until(async () => {
      const s = await json<{ device: { id: string }; twin: { reported: { readings: Record<string, { value: number }> } } }>([
        "devices",
        "show",
        id,
      ]);
      return s.twin.reported.readings.temperature ? s : undefined;
    }, "the reading in the twin");
    expect(shown.twin.reported.readings.temperature?.value).toBe(21.5);
    const human = await cli(["devices", "show", id]);
    expect(human.stdout).toMatch(/temperature\s+21\.5/);

    const rotated = await json<{ token: string }>(["devices", "rotate", id]);
    expect(rotated.token).not.toBe(token);
    expect(await postTelemetry(token as string, { temperature: 22 })).toBe(401);
    expect(await postTelemetry(rotated.token, { temperature: 22 })).toBe(202);

    const refused = await cli(["devices", "remove", id]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("--yes");
    expect((await cli(["devices", "remove", id, "--yes"])).code).toBe(0);
    const gone = await cli(["devices", "show", id, "--json"]);
    expect(gone.code).toBe(4);
    expect(JSON.parse(gone.stdout)).toMatchObject({ exit_code: 4, status: 404, code: "not_found" });
  });

  it("exit codes: refused credentials 3, rejected input 5, unreachable edge 1, missing URL 2", async () => {
    const badToken = await cli(["devices", "list"], { EDGEMESH_TOKEN: "not-the-admin-token" });
    expect(badToken.code).toBe(3);
    expect(badToken.stderr).toContain("401 unauthorized");
    expect(badToken.stderr).toContain("EDGEMESH_TOKEN");

    const invalid = await cli(["devices", "add", "Not An Id", "--type", "temperature", "--json"]);
    expect(invalid.code).toBe(5);
    expect(JSON.parse(invalid.stdout)).toMatchObject({ exit_code: 5, status: 400, code: "invalid_payload" });

    const unreachable = await cli(["rooms", "list"], { EDGEMESH_URL: "http://127.0.0.1:9" });
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toContain("cannot reach the edge");

    const noUrl = await cli(["rooms", "list"], { EDGEMESH_URL: undefined });
    expect(noUrl.code).toBe(2);
    expect(noUrl.stderr).toContain("EDGEMESH_URL");

    // archive hands over to the archive tool, exit codes and all: no store given is its usage error.
    const archive = await cli(["archive", "list", "--from", "1h"], {
      R2_ENDPOINT: undefined,
      AWS_ENDPOINT_URL: undefined,
      AWS_ENDPOINT_URL_S3: undefined,
    });
    expect(archive.code).toBe(2);
    expect(archive.stderr).toContain("edgemesh-archive: say where the archive is");
  });

  it("config set writes the file (mode 600, token from stdin); later commands need no flags; show never prints the token", async () => {
    const path = join(HOME, "set", "config.json");
    const set = start(["config", "set", "--url", `${edge.url}/`, "--token-stdin", "--config", path], {
      EDGEMESH_URL: undefined,
      EDGEMESH_TOKEN: undefined,
    });
    set.child.stdin?.end(edge.adminToken);
    expect((await set.done).code).toBe(0);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(path, "utf8"))).toEqual({ url: edge.url, token: edge.adminToken });
    const env = { EDGEMESH_URL: undefined, EDGEMESH_TOKEN: undefined, EDGEMESH_CONFIG: path };
    expect((await cli(["rooms", "list"], env)).code).toBe(0);
    const shown = await cli(["config", "show"], env);
    expect(shown.stdout).toContain(`set (from ${path})`);
    expect(shown.stdout).not.toContain(edge.adminToken);
    expect((await cli(["config", "set"], env)).code).toBe(2);
  });

  it("reads the edge and token from a config file, and warns when others can read it", async () => {
    const path = join(HOME, "edgemesh.json");
    writeFileSync(path, JSON.stringify({ url: edge.url, token: edge.adminToken }));
    chmodSync(path, 0o644);
    const loose = await cli(["rooms", "list", "--config", path], { EDGEMESH_URL: undefined, EDGEMESH_TOKEN: undefined });
    expect(loose.code).toBe(0);
    expect(loose.stderr).toContain("chmod 600");
    chmodSync(path, 0o600);
    const tight = await cli(["rooms", "list"], { EDGEMESH_URL: undefined, EDGEMESH_TOKEN: undefined, EDGEMESH_CONFIG: path });
    expect(tight.code).toBe(0);
    expect(tight.stderr).toBe("");
  });

  it("rooms: add, assign, show with aggregates, list, remove only when empty", async () => {
    const room = uniqueId("cli-room");
    const id = uniqueId("cli-plug");
    expect((await cli(["rooms", "add", room, "--name", "Workshop"])).code).toBe(0);
    expect((await cli(["rooms", "add", room])).code).toBe(5); // 409 conflict
    const { token } = await json<{ token: string }>(["devices", "add", id, "--type", "energy"]);
    expect((await cli(["rooms", "assign", room, id])).code).toBe(0);
    expect(await postTelemetry(token, { power_kw: 1.5 })).toBe(202);
    const shown = await until(async () => {
      const s = await json<{ devices: { id: string }[]; aggregates: { metric: string; max: number }[] }>(["rooms", "show", room]);
      return s.aggregates.length > 0 ? s : undefined;
    }, "the room's aggregate");
    expect(shown.devices.map((d) => d.id)).toEqual([id]);
    expect(shown.aggregates.find((a) => a.metric === "power_kw")?.max).toBe(1.5);
    const list = await cli(["rooms", "list"]);
    expect(list.stdout).toMatch(new RegExp(`${room}\\s+Workshop\\s+1`));
    expect((await cli(["rooms", "remove", room])).code).toBe(5);
    expect((await cli(["rooms", "unassign", room, id])).code).toBe(0);
    expect((await cli(["rooms", "remove", room])).code).toBe(0);
  });

  it("commands: send --watch follows the device's answer; an unanswered watch times out with 6", async () => {
    const id = uniqueId("cli-valve");
    const { token } = await json<{ token: string }>(["devices", "add", id, "--type", "valve"]);
    // The device: long-polls its commands and answers the first one.
    const device = (async () => {
      for (let i = 0; i < 20; i++) {
        const res = await fetch(`${edge.url}/v1/device/commands?wait_s=5`, { headers: { authorization: `Bearer ${token}` } });
        const { commands } = (await res.json()) as { commands: { id: string }[] };
        const first = commands[0];
        if (first) {
          await fetch(`${edge.url}/v1/device/commands/${first.id}/result`, {
            method: "POST",
            headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
            body: JSON.stringify({ status: "succeeded", result: { opened: true } }),
          });
          return;
        }
      }
    })();
    const sent = await cli(["commands", "send", id, "open", "--param", "percent=40", "--watch", "--timeout", "30", "--json"]);
    await device;
    expect(sent.code, sent.stderr).toBe(0);
    const { command } = JSON.parse(sent.stdout) as { command: { id: string; status: string; parameters: unknown; result: unknown } };
    expect(command).toMatchObject({ status: "succeeded", parameters: { percent: 40 }, result: { opened: true } });
    const listed = await cli(["commands", "list", id]);
    expect(listed.stdout).toMatch(new RegExp(`${command.id}\\s+open\\s+succeeded`));

    const queued = await json<{ command: { id: string; status: string } }>(["commands", "send", id, "close"]);
    expect(queued.command.status).toBe("queued");
    const watched = await cli(["commands", "watch", id, queued.command.id, "--timeout", "1"]);
    expect(watched.code).toBe(6);
    expect(watched.stdout).toMatch(/status:\s+queued/);
  });

  it("tail: streams a device's readings over the live WebSocket, filtered, as JSON lines", async () => {
    const room = uniqueId("cli-tail");
    const watched = uniqueId("cli-watched");
    const other = uniqueId("cli-other");
    const a = await json<{ token: string }>(["devices", "add", watched, "--type", "temperature", "--room", room]);
    const b = await json<{ token: string }>(["devices", "add", other, "--type", "temperature", "--room", room]);
    const tail = start(["tail", "--room", room, "--device", watched, "--stream", "twin", "--count", "2", "--timeout", "60", "--json"]);
    await until(async () => (tail.stderr().includes(`watching room:${room}`) ? true : undefined), "tail to subscribe").catch((error) => {
      tail.child.kill();
      throw new Error(`${error} — tail said: ${tail.stderr()}`);
    });
    expect(await postTelemetry(b.token, { temperature: 30 })).toBe(202);
    expect(await postTelemetry(a.token, { temperature: 19.5 })).toBe(202);
    expect(await postTelemetry(a.token, { humidity: 55 })).toBe(202);
    const run = await tail.done;
    expect(run.code, run.stderr).toBe(0);
    const lines = run.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { stream: string; device: string; hub: string; data: { readings: Record<string, { value: number }> } });
    expect(lines).toHaveLength(2);
    expect(lines.every((l) => l.device === watched && l.stream === "twin" && l.hub === `room:${room}`)).toBe(true);
    expect(lines[0]?.data.readings.temperature?.value).toBe(19.5);
    expect(lines[1]?.data.readings.humidity?.value).toBe(55);

    // Without --json: one line per update, like mosquitto_sub.
    const human = start(["tail", "--room", room, "--stream", "twin", "--count", "1", "--timeout", "60"]);
    await until(async () => (human.stderr().includes(`watching room:${room}`) ? true : undefined), "tail to subscribe");
    expect(await postTelemetry(b.token, { temperature: { value: 88.7, unit: "°F" } })).toBe(202); // shown as stored: 31.5 °C
    const line = (await human.done).stdout.trim();
    expect(line).toMatch(new RegExp(`^\\S+Z  ${room}  twin\\s+${other}  sensors\\.temperature\\.${room}  temperature=31\\.5°C$`));
  });

  it("dead letters: list shows an unroutable message; replaying it reports it still unroutable (exit 1)", async () => {
    const id = uniqueId("cli-collector");
    const { token } = await json<{ token: string }>([
      "devices",
      "add",
      id,
      "--type",
      "collector",
      "--kind",
      "service",
      "--publish",
      "metrics:#",
    ]);
    const res = await fetch(`${edge.url}/v1/exchanges/metrics/publish`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ routing_key: "metrics.nowhere.at_all", payload: { cpu: 0.5 } }),
    });
    expect(res.status).toBe(202);
    const letter = await until(async () => {
      const l = await json<{ dead_letters: { id: number; routing_key: string }[] }>(["dead-letters", "list", "--source", id]);
      return l.dead_letters[0];
    }, "the dead letter");
    expect(letter.routing_key).toBe("metrics.nowhere.at_all");
    const table = await cli(["dead-letters", "list", "--source", id]);
    expect(table.stdout).toMatch(/^ID\s+FAILED AT\s+QUEUE/);
    expect(table.stdout).toContain("metrics.nowhere.at_all");
    const replay = await cli(["dead-letters", "replay", String(letter.id), "--json"]);
    expect(replay.code).toBe(1);
    expect(JSON.parse(replay.stdout)).toMatchObject({ replayed: 0, still_unroutable: [letter.id] });
    expect((await cli(["dead-letters", "replay"])).code).toBe(2);
  });

  it("tokens: an admin issues a viewer's login token; its access token may read but not remove (3)", async () => {
    const issued = await json<{ refresh_token: string; role: string }>(["tokens", "issue", "alice@example.com", "--role", "viewer"]);
    expect(issued.role).toBe("viewer");
    const access = await json<{ access_token: string; role: string; sub: string }>([
      "tokens",
      "access",
      "--refresh-token",
      issued.refresh_token,
    ]);
    expect(access).toMatchObject({ role: "viewer", sub: "alice@example.com" });
    const asViewer = { EDGEMESH_TOKEN: access.access_token };
    expect((await cli(["rooms", "list"], asViewer)).code).toBe(0);
    const denied = await cli(["devices", "remove", "whatever", "--yes"], asViewer);
    expect(denied.code).toBe(3);
    expect(denied.stderr).toContain("403 forbidden");
    expect((await cli(["tokens", "issue", "bob", "--role", "admin"], asViewer)).code).toBe(3);
  });
});
