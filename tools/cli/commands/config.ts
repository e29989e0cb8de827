/**
 * edgemesh config: writes the config file (mode 600) so that daily commands need no flags or
 * environment, and shows where the edge and token currently come from (never the token itself).
 */
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { type CommandSpec, str } from "../command.ts";
import { UsageError } from "../errors.ts";
import { fields } from "../output.ts";
import { defaultConfigPath, resolveSettings } from "../settings.ts";

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8").trim();
}

export const config: Record<string, CommandSpec> = {
  set: {
    summary: "write the config file: the edge's URL and, from stdin, its token",
    local: true,
    options: {
      "token-stdin": { type: "boolean", help: "read the token from standard input (keeps it out of the process list)" },
    },
    notes: 'Example: printf %s "$ADMIN_TOKEN" | edgemesh config set --url https://edgemesh.example.workers.dev --token-stdin',
    async run(ctx) {
      const path = str(ctx.values, "config") ?? ctx.io.env.EDGEMESH_CONFIG ?? defaultConfigPath(ctx.io.env);
      const url = str(ctx.values, "url");
      const token = ctx.values["token-stdin"] === true ? await readStdin() : str(ctx.values, "token");
      if (!url && !token) throw new UsageError("config set needs --url, a token (--token-stdin), or both");
      if (url && !/^https?:\/\//.test(url)) throw new UsageError(`--url "${url}" is not an http(s) URL`);
      let current: Record<string, unknown> = {};
      try {
        current = JSON.parse(readFileSync(path, "utf8"));
      } catch {}
      const next = { ...current, ...(url && { url: url.replace(/\/+$/, "") }), ...(token && { token }) };
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      writeFileSync(path, `${JSON.stringify(next, null, 2)}\n`, { mode: 0o600 });
      // The mode above applies only to a new file: an existing one readable by others is narrowed too.
      chmodSync(path, 0o600);
      return { data: { path, url: next.url ?? null, token: next.token ? "set" : "unset" }, text: `Wrote ${path} (mode 600).` };
    },
  },
  show: {
    summary: "where the edge and the token come from (the token itself is never printed)",
    local: true,
    async run(ctx) {
      const settings = resolveSettings(
        { url: str(ctx.values, "url"), token: str(ctx.values, "token"), config: str(ctx.values, "config") },
        ctx.io.env,
      );
      const data = {
        url: settings.url,
        url_from: settings.source.url,
        token: settings.token ? "set" : "unset",
        token_from: settings.source.token,
      };
      return {
        data,
        text: fields([
          ["url", `${data.url} (from ${data.url_from})`],
          ["token", settings.token ? `set (from ${data.token_from})` : "not set"],
        ]),
      };
    },
  },
};
