/**
 * A tiny TCP → WebSocket bridge for MQTT clients that speak only TCP (Debian's mosquitto_pub and
 * mosquitto_sub are built without WebSocket support): each TCP connection becomes one WebSocket
 * to the edge's `/mqtt/<device>` with the `mqtt` subprotocol, bytes relayed both ways, and a
 * close on either side closes the other (a killed client is a dropped connection: its will fires).
 */
import { createServer, type Server, type Socket } from "node:net";

export interface WsProxy {
  port: number;
  close(): Promise<void>;
}

export async function startWsProxy(url: string): Promise<WsProxy> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    const ws = new WebSocket(url, ["mqtt"]);
    ws.binaryType = "arraybuffer";
    const pending: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(chunk);
      else pending.push(chunk);
    });
    ws.addEventListener("open", () => {
      for (const chunk of pending.splice(0)) ws.send(chunk);
    });
    ws.addEventListener("message", (event) => socket.write(Buffer.from(event.data as ArrayBuffer)));
    ws.addEventListener("close", () => socket.end());
    ws.addEventListener("error", () => socket.destroy());
    const drop = () => {
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close();
    };
    socket.on("close", drop);
    socket.on("error", drop);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("the proxy has no port");
  return {
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
