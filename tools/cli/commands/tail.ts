/**
 * edgemesh tail: the mesh's live updates in the terminal, like mosquitto_sub — over the
 * dashboards' WebSocket (/v1/live, docs/live.md), one socket per room hub. Filters go to the
 * hub (devices, routing-key patterns, streams), so only what matches crosses the network.
 * A dropped socket reconnects and resumes after the last update it printed.
 */
import { displayReading } from "../../../shared/display.ts";
import type { LiveServerMessage, LiveUpdate } from "../../../shared/schemas/api/live.ts";
import type { CommandSpec, Context } from "../command.ts";
import { int, list } from "../command.ts";
import { CliError, EXIT, UsageError } from "../errors.ts";

const STREAMS = ["twin", "availability", "command", "dead_letter"] as const;

/** An update as the hub sends it, and everything else it sends (shared/schemas/api/live.ts). */
type Update = LiveUpdate;
type ServerMessage = LiveServerMessage;

function summary(u: Update): string {
  const d = u.data;
  switch (u.stream) {
    case "twin": {
      const readings = (d.readings ?? {}) as Record<string, { value: unknown; unit?: string }>;
      return Object.entries(readings)
        .map(([k, r]) => `${k}=${displayReading(r.value, r.unit, "")}`)
        .join(" ");
    }
    case "availability":
      return `${d.status} (was ${d.previous ?? "-"}, ${d.reason ?? "-"})`;
    case "command":
      return `${d.command} ${d.id} ${d.status}`;
    case "dead_letter":
      return `${d.queue} ${JSON.stringify(d.error)}`;
    default:
      return JSON.stringify(d);
  }
}

export function formatUpdate(u: Update, hub: string): string {
  return [u.at, hub.replace(/^room:/, ""), u.stream.padEnd(12), u.device ?? "-", u.routing_key ?? "-", summary(u)].join("  ");
}

interface Hub {
  /** The /v1/live `hub` parameter: a room id, unassigned, or system. */
  name: string;
  /** The hub's own name (room:<id>, system), as printed. */
  label: string;
  lastSeq: number;
  attempts: number;
}

function liveUrl(base: string, hub: string): string {
  const url = new URL("/v1/live", `${base}/`);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("hub", hub);
  return url.toString();
}

/** The hubs to watch. Listing the rooms also checks the token, which a failed upgrade cannot tell apart. */
async function hubsFor(ctx: Context, rooms: string[], streams: string[]): Promise<string[]> {
  const all = (await ctx.client.get<{ rooms: { id: string }[] }>("/v1/rooms")).rooms.map((r) => r.id);
  const hubs = rooms.length > 0 ? rooms : [...all, "unassigned"];
  const wantsDeadLetters = streams.length === 0 ? rooms.length === 0 : streams.includes("dead_letter");
  return wantsDeadLetters ? [...hubs, "system"] : hubs;
}

export const tail: CommandSpec = {
  summary: "print live updates (readings, availability, commands, dead letters) as they happen",
  options: {
    room: {
      type: "string",
      multiple: true,
      value: "ROOM",
      help: "only this room's hub (repeatable; 'unassigned' for devices without a room); default every room",
    },
    device: { type: "string", multiple: true, value: "DEVICE", help: "only this device (repeatable)" },
    pattern: {
      type: "string",
      multiple: true,
      value: "PATTERN",
      help: "only routing keys matching this AMQP pattern, e.g. sensors.*.kitchen (repeatable)",
    },
    stream: { type: "string", multiple: true, value: "STREAM", help: "twin, availability, command, dead_letter (repeatable; default all)" },
    count: { type: "string", short: "C", value: "N", help: "exit after N updates" },
    timeout: { type: "string", short: "W", value: "SECONDS", help: "exit after this long; exit code 6 if --count was not reached" },
  },
  notes: `Output: one line per update — time, room, stream, device, routing key, what changed; with
--json one JSON object per line (the hub's update message plus "hub"). Ready and reconnect notices
go to stderr. Ctrl-C ends it (exit code 0).
Example: edgemesh tail --room kitchen --stream twin --pattern 'sensors.temperature.*'`,
  async run(ctx) {
    const streams = list(ctx.values, "stream");
    for (const s of streams)
      if (!(STREAMS as readonly string[]).includes(s)) throw new UsageError(`--stream is one of ${STREAMS.join(", ")}, not "${s}"`);
    const count = int(ctx.values, "count", 1, Number.MAX_SAFE_INTEGER);
    const timeout = int(ctx.values, "timeout", 1, 7 * 86_400);
    const token = ctx.client.requireToken();
    const subscribe = {
      type: "subscribe",
      devices: list(ctx.values, "device"),
      patterns: list(ctx.values, "pattern"),
      ...(streams.length > 0 && { streams }),
    };
    const hubs: Hub[] = (await hubsFor(ctx, list(ctx.values, "room"), streams)).map((name) => ({
      name,
      label: name === "system" ? name : `room:${name}`,
      lastSeq: 0,
      attempts: 0,
    }));

    let printed = 0;
    const sockets = new Set<WebSocket>();
    let stopped = false;
    let finish: (code: number, error?: CliError) => void = () => {};
    const done = new Promise<{ code: number; error?: CliError }>((resolve) => {
      finish = (code, error) => {
        stopped = true;
        resolve({ code, error });
      };
    });

    const print = (u: Update, hub: Hub) => {
      if (u.seq <= hub.lastSeq) return; // already printed before a reconnect
      hub.lastSeq = u.seq;
      ctx.io.stdout(ctx.json ? JSON.stringify({ ...u, hub: hub.label }) : formatUpdate(u, hub.label));
      printed++;
      if (count !== undefined && printed >= count) finish(EXIT.ok);
    };

    const open = (hub: Hub) => {
      if (stopped) return;
      const ws = new WebSocket(liveUrl(ctx.client.url, hub.name), ["edgemesh.v1", `bearer.${token}`]);
      sockets.add(ws);
      let unacked = 0;
      const ackTimer = setInterval(() => {
        if (unacked > 0 && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "ack", seq: hub.lastSeq }));
        unacked = 0;
      }, 5000);
      ws.addEventListener("open", () => {
        ws.send(JSON.stringify(subscribe));
        if (hub.lastSeq > 0) ws.send(JSON.stringify({ type: "resume", after: hub.lastSeq }));
      });
      ws.addEventListener("message", (event) => {
        const message = JSON.parse(String(event.data)) as ServerMessage;
        if (message.type === "snapshot") {
          if (hub.lastSeq === 0) hub.lastSeq = message.seq;
          hub.attempts = 0;
          ctx.io.stderr(`tail: watching ${hub.label} (seq ${message.seq})`);
        } else if (message.type === "update") print(message, hub);
        else if (message.type === "coalesced") for (const u of message.updates) print(u, hub);
        else if (message.type === "error") ctx.io.stderr(`tail: the hub answered ${message.code}: ${message.message}`);
        if (message.type === "update" || message.type === "coalesced") {
          if (++unacked >= 50) {
            ws.send(JSON.stringify({ type: "ack", seq: hub.lastSeq }));
            unacked = 0;
          }
        }
      });
      ws.addEventListener("close", (event) => {
        clearInterval(ackTimer);
        sockets.delete(ws);
        if (stopped) return;
        if (event.code === 4003) return finish(EXIT.auth, new CliError(`the hub ${hub.label} refused the token (4003)`, EXIT.auth));
        // Anything else (4001 expiry with a JWT, 4008, 1011, 1001, a network drop): reconnect with backoff.
        const delay = Math.min(10_000, 250 * 2 ** hub.attempts++);
        if (hub.attempts > 1 || event.code !== 1001)
          ctx.io.stderr(`tail: ${hub.label} closed (${event.code} ${event.reason}); reconnecting in ${delay} ms`);
        setTimeout(() => open(hub), delay);
      });
      ws.addEventListener("error", () => {
        // Before the upgrade (401, 403 Origin, unreachable) there is no close code worth retrying on.
        if (ws.readyState !== WebSocket.OPEN && hub.lastSeq === 0 && hub.attempts === 0) {
          finish(
            EXIT.failure,
            new CliError(
              `could not open the live stream of ${hub.label} at ${liveUrl(ctx.client.url, hub.name)} (is the token valid? try edgemesh devices list)`,
            ),
          );
        }
      });
    };

    for (const hub of hubs) open(hub);
    const onAbort = () => finish(EXIT.ok);
    ctx.signal.addEventListener("abort", onAbort);
    const timer =
      timeout !== undefined ? setTimeout(() => finish(count !== undefined ? EXIT.timeout : EXIT.ok), timeout * 1000) : undefined;
    const outcome = await done;
    clearTimeout(timer);
    ctx.signal.removeEventListener("abort", onAbort);
    for (const ws of sockets) ws.close(1000, "tail done");
    if (outcome.error) throw outcome.error;
    return { data: undefined, text: "", exitCode: outcome.code };
  },
};
