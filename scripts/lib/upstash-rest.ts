/**
 * A small Upstash-REST-protocol front for a real Redis, for tests and benchmarks only: no
 * official Upstash server can run here, so this speaks the part of the protocol @upstash/redis
 * uses — `POST /` with a command as a JSON array, `POST /pipeline` and `POST /multi-exec` with an
 * array of them, Bearer-token auth, `{result}` / `{error}` answers, and base64-encoded strings
 * when the client sends `Upstash-Encoding: base64` — and hands each command to Redis through
 * node-redis. docs/ai.md says what it is and is not.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createClient } from "redis";
import { freePort } from "./local-edge.ts";

export const NO_REDIS_MESSAGE = "redis-server is not installed (Debian: apt-get install redis-server; .ci/run installs it)";

export function findRedisServer(): string | undefined {
  return ["/usr/bin/redis-server", "/usr/local/bin/redis-server"].find((p) => existsSync(p));
}

export interface RedisServer {
  url: string;
  port: number;
  stop(): Promise<void>;
}

/** A throwaway redis-server on a free port, in memory only (no snapshots). */
export async function startRedis(): Promise<RedisServer> {
  const bin = findRedisServer();
  if (!bin) throw new Error(NO_REDIS_MESSAGE);
  const port = await freePort();
  const child = spawn(bin, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore" });
  const url = `redis://127.0.0.1:${port}`;
  const probe = createClient({ url });
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      await probe.connect();
      await probe.ping();
      await probe.quit();
      break;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`redis-server did not start on ${port}: ${error}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    url,
    port,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    },
  };
}

export interface UpstashRest {
  url: string;
  token: string;
  stop(): Promise<void>;
}

function encode(value: unknown): unknown {
  if (typeof value === "string") return Buffer.from(value).toString("base64");
  if (Array.isArray(value)) return value.map(encode);
  return value;
}

async function read(req: IncomingMessage): Promise<string> {
  let body = "";
  for await (const chunk of req) body += chunk;
  return body;
}

/** Serves the Upstash REST protocol on a free 127.0.0.1 port, backed by the Redis at `redisUrl`. */
export async function startUpstashRest(redisUrl: string, token = randomBytes(16).toString("hex")): Promise<UpstashRest> {
  const redis = createClient({ url: redisUrl });
  await redis.connect();
  const run = async (command: unknown[]): Promise<{ result?: unknown; error?: string }> => {
    try {
      return { result: await redis.sendCommand(command.map(String)) };
    } catch (error) {
      return { error: (error as Error).message };
    }
  };
  const server: Server = createServer(async (req, res) => {
    const reply = (status: number, body: unknown) =>
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
    if (req.headers.authorization !== `Bearer ${token}`) return reply(401, { error: "Unauthorized" });
    const base64 = String(req.headers["upstash-encoding"] ?? "").toLowerCase() === "base64";
    const shape = (r: { result?: unknown; error?: string }) => (r.error ? r : { result: base64 ? encode(r.result) : r.result });
    let parsed: unknown;
    try {
      parsed = JSON.parse(await read(req));
    } catch {
      return reply(400, { error: "ERR the body is not JSON" });
    }
    if (req.method !== "POST" || !Array.isArray(parsed)) return reply(400, { error: "ERR send a command as a JSON array" });
    if (req.url === "/pipeline" || req.url === "/multi-exec") {
      const results = [];
      for (const command of parsed) results.push(shape(await run(command as unknown[])));
      return reply(200, results);
    }
    const result = shape(await run(parsed));
    return reply(result.error ? 400 : 200, result);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    token,
    stop: async () => {
      await new Promise((r) => server.close(r));
      await redis.quit();
    },
  };
}
