/**
 * AgentLink: one Durable Object per LAN agent (name = the agent's id), holding the agent's
 * WebSocket (hibernatable). A twin whose device the agent carries calls `wake` when a command is
 * queued or its desired state changes; the agent then fetches them at once through its HTTPS
 * routes, which keep the command outbox's delivery rules (docs/agent.md). The socket carries
 * only these wake-ups, so a lost frame costs latency, never a command: the agent also polls.
 */
import { DurableObject } from "cloudflare:workers";
import { AgentWake } from "../shared/schemas/agent";

/** Sockets one agent may hold at once; a new one beyond closes the oldest (a restarted agent's ghost). */
export const MAX_AGENT_SOCKETS = 4;
/** Close code for a socket replaced by a newer one of the same agent. */
export const CLOSE_REPLACED = 4009;

export class AgentLink extends DurableObject<Env> {
  /** The upgrade, forwarded by the Worker once it has authenticated the agent. */
  override async fetch(request: Request): Promise<Response> {
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") return new Response("expected a WebSocket upgrade", { status: 426 });
    const open = this.ctx.getWebSockets();
    for (const old of open.slice(0, Math.max(0, open.length - MAX_AGENT_SOCKETS + 1))) {
      try {
        old.close(CLOSE_REPLACED, "replaced by a newer connection of this agent");
      } catch {
        // already closing
      }
    }
    const pair = new WebSocketPair();
    this.ctx.acceptWebSocket(pair[1]);
    // Pings are answered by the runtime without waking the object.
    this.ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
    pair[1].send(JSON.stringify(AgentWake.parse({ type: "hello", at: new Date().toISOString() })));
    return new Response(null, { status: 101, webSocket: pair[0] });
  }

  /** A twin's call: tells every connected socket of the agent which device has something waiting. Returns how many heard it. */
  async wake(device: string, reason: "commands" | "desired"): Promise<number> {
    const frame = JSON.stringify(AgentWake.parse({ type: "wake", device, reason }));
    let sent = 0;
    for (const ws of this.ctx.getWebSockets()) {
      try {
        ws.send(frame);
        sent++;
      } catch {
        // closing; webSocketClose cleans up
      }
    }
    return sent;
  }

  /** How many sockets the agent holds now (0: offline, for the system alerts). */
  async sockets(): Promise<number> {
    return this.ctx.getWebSockets().length;
  }

  /** The agent sends nothing but pings (answered automatically); anything else is ignored. */
  override async webSocketMessage(): Promise<void> {}

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code, reason);
    } catch {
      // already closed
    }
  }
}
