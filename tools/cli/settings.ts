/**
 * Where the CLI finds the edge and its credential: flags first, then the environment
 * (EDGEMESH_URL, EDGEMESH_TOKEN), then a config file (--config, EDGEMESH_CONFIG, or
 * ~/.config/edgemesh/config.json) holding {"url": "...", "token": "..."}.
 */
import { readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { UsageError } from "./errors.ts";

export type Env = Record<string, string | undefined>;

const ConfigFile = z.strictObject({ url: z.string().optional(), token: z.string().optional() });

export interface Settings {
  url: string;
  token: string | undefined;
  /** Where each came from, for error messages. */
  source: { url: string; token: string };
  /** Warnings to print (a config file others can read). */
  warnings: string[];
}

export function defaultConfigPath(env: Env): string {
  return join(env.XDG_CONFIG_HOME ?? join(env.HOME ?? homedir(), ".config"), "edgemesh", "config.json");
}

function readConfigFile(path: string, explicit: boolean, warnings: string[]): z.infer<typeof ConfigFile> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    if (!explicit && (error as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw new UsageError(`cannot read the config file ${path}: ${(error as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new UsageError(`the config file ${path} is not JSON: write {"url": "https://…", "token": "…"}`);
  }
  const config = ConfigFile.safeParse(parsed);
  if (!config.success) throw new UsageError(`the config file ${path} may hold only "url" and "token" (strings)`);
  // The file holds a credential: say so when others may read it (as ssh does for keys).
  if (config.data.token && (statSync(path).mode & 0o077) !== 0) warnings.push(`${path} is readable by others: chmod 600 it`);
  return config.data;
}

export function resolveSettings(flags: { url?: string; token?: string; config?: string }, env: Env): Settings {
  const warnings: string[] = [];
  const explicitPath = flags.config ?? env.EDGEMESH_CONFIG;
  const path = explicitPath ?? defaultConfigPath(env);
  const file = readConfigFile(path, explicitPath !== undefined, warnings);
  const [url, urlSource] = flags.url
    ? [flags.url, "--url"]
    : env.EDGEMESH_URL
      ? [env.EDGEMESH_URL, "EDGEMESH_URL"]
      : file.url
        ? [file.url, path]
        : [undefined, ""];
  const [token, tokenSource] = flags.token
    ? [flags.token, "--token"]
    : env.EDGEMESH_TOKEN
      ? [env.EDGEMESH_TOKEN, "EDGEMESH_TOKEN"]
      : file.token
        ? [file.token, path]
        : [undefined, "nowhere"];
  if (!url) throw new UsageError(`say where the edge is: --url URL, EDGEMESH_URL, or "url" in ${path}`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`${urlSource} "${url}" is not a URL`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new UsageError(`${urlSource} "${url}" is not an http(s) URL`);
  return { url: url.replace(/\/+$/, ""), token, source: { url: urlSource, token: tokenSource }, warnings };
}
