/**
 * How late the gateway's keep-alive close comes, against the local edge (wrangler dev, the real
 * bundle): silent v5 connections with a 2 s keep alive, beside busy ones publishing QoS 1 in a
 * closed loop on the same devices (the alarm then competes with the packets of its object).
 * Prints, for the silent ones, the time from CONNACK to the close as a multiple of the keep alive:
 * the spec's bound is 1.5 × [MQTT-3.1.2-24]; the gateway aims at 1.5 × less its margin
 * (durable-objects/mqtt/types.ts, KEEP_ALIVE_MARGIN_MS). docs/mqtt.md, "Keep alive".
 *
 *   node test/mqtt/keepalive-lateness.ts [devices=10] [silent-per-device=5] [keepalive-s=2] [publish-every-ms=20, 0: none]
 */
import { generate, type Packet } from "mqtt-packet";
import { startLocalEdge } from "../../scripts/lib/local-edge.ts";

const [devices = 10, silentPer = 5, keepalive = 2, every = 20] = process.argv.slice(2).map(Number);
const edge = await startLocalEdge();
const bytes = (p: Packet) => new Uint8Array(generate(p, { protocolVersion: 5 }) as unknown as Uint8Array);

function connect(
  id: string,
  token: string,
  clientId: string,
  ka: number,
): Promise<{ ws: WebSocket; connackAt: number; closed: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${edge.port}/mqtt/${id}`, ["mqtt"]);
    ws.binaryType = "arraybuffer";
    const closed = new Promise<number>((done) => ws.addEventListener("close", () => done(performance.now())));
    ws.addEventListener("open", () =>
      ws.send(
        bytes({
          cmd: "connect",
          protocolId: "MQTT",
          protocolVersion: 5,
          clean: true,
          clientId,
          keepalive: ka,
          username: id,
          password: token,
        } as unknown as Packet),
      ),
    );
    ws.addEventListener("message", function first() {
      ws.removeEventListener("message", first);
      resolve({ ws, connackAt: performance.now(), closed });
    });
    ws.addEventListener("error", reject);
  });
}

try {
  let busy = true;
  const ratios: number[] = [];
  const loads: Promise<void>[] = [];
  const silent: Promise<void>[] = [];
  for (let d = 0; d < devices; d++) {
    const id = `ka-${Date.now().toString(36)}-${d}`;
    const created = await edge.admin<{ token: string }>("POST", "/v1/devices", { id, type: "climate", room: "lab" });
    const token = created.body.token;
    const publisher = await connect(id, token, `${id}-busy`, 60);
    let mid = 0;
    loads.push(
      (async () => {
        while (busy && every > 0) {
          mid = (mid % 60_000) + 1;
          publisher.ws.send(
            bytes({
              cmd: "publish",
              topic: `devices/${id}/state/x`,
              payload: String(mid),
              qos: 1,
              messageId: mid,
              dup: false,
              retain: false,
            }),
          );
          await new Promise((r) => setTimeout(r, every));
        }
        publisher.ws.close();
      })(),
    );
    for (let s = 0; s < silentPer; s++) {
      const conn = await connect(id, token, `${id}-s${s}`, keepalive);
      silent.push(conn.closed.then((at) => void ratios.push((at - conn.connackAt) / (keepalive * 1000))));
    }
  }
  await Promise.race([Promise.all(silent), new Promise((r) => setTimeout(r, keepalive * 10_000))]);
  busy = false;
  await Promise.all(loads);
  ratios.sort((a, b) => a - b);
  const at = (q: number) => (ratios[Math.min(ratios.length - 1, Math.floor(q * ratios.length))] ?? Number.NaN).toFixed(3);
  console.log(
    JSON.stringify({
      silent: devices * silentPer,
      publish_every_ms: every,
      closed: ratios.length,
      keepalive_s: keepalive,
      min: at(0),
      p50: at(0.5),
      p99: at(0.99),
      max: at(1),
    }),
  );
} finally {
  await edge.stop();
}
