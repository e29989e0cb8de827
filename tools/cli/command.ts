/** How a CLI command is declared: its arguments and flags (for parseArgs and --help) and what it runs. */
import type { Device } from "../../shared/schemas/api/device.ts";
import type { EdgeClient } from "./client.ts";
import { UsageError } from "./errors.ts";

export interface OptionSpec {
  type: "string" | "boolean";
  short?: string;
  multiple?: boolean;
  /** The value's name in the help (`--room ROOM`). */
  value?: string;
  help: string;
}

export interface Io {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: Record<string, string | undefined>;
  /** Whether stderr is a terminal (progress bars are drawn only there). */
  tty: boolean;
}

export type Values = Record<string, string | boolean | string[] | undefined>;

export interface Context {
  args: string[];
  values: Values;
  /** The edge (unset for `local` commands). */
  client: EdgeClient;
  json: boolean;
  /** Draw progress bars (a terminal, no --json, no --no-progress). */
  progress: boolean;
  io: Io;
  /** Set by long-running commands (tail): stop on Ctrl-C. */
  signal: AbortSignal;
}

/** `data` is printed with --json, `text` otherwise; a command may stream instead and leave text empty. */
export interface Result {
  data: unknown;
  text: string;
  exitCode?: number;
}

export interface CommandSpec {
  summary: string;
  /** Positional arguments as shown in the usage line: `<id>`, `[ids...]`. */
  args?: string[];
  options?: Record<string, OptionSpec>;
  /** Extra help text: examples, what the output means. */
  notes?: string;
  /** Works on this machine only: needs no edge URL (config set). */
  local?: boolean;
  run(ctx: Context): Promise<Result>;
}

export function str(values: Values, name: string): string | undefined {
  const value = values[name];
  return typeof value === "string" ? value : undefined;
}

export function list(values: Values, name: string): string[] {
  const value = values[name];
  return Array.isArray(value) ? value : typeof value === "string" ? [value] : [];
}

export function int(values: Values, name: string, min: number, max: number): number | undefined {
  const raw = str(values, name);
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name} is a whole number from ${min} to ${max}, not "${raw}"`);
  return n;
}

/** `key=value` pairs (--meta, --param); values that parse as JSON (numbers, true, {…}) are taken as such. */
export function pairs(items: string[], flag: string, parseValues: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const item of items) {
    const at = item.indexOf("=");
    if (at < 1) throw new UsageError(`--${flag} takes key=value, not "${item}"`);
    const raw = item.slice(at + 1);
    let value: unknown = raw;
    if (parseValues) {
      try {
        value = JSON.parse(raw);
      } catch {}
    }
    out[item.slice(0, at)] = value;
  }
  return out;
}

export function jsonOption(values: Values, name: string): Record<string, unknown> | undefined {
  const raw = str(values, name);
  if (raw === undefined) return undefined;
  try {
    const parsed = JSON.parse(raw);
    if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) return parsed;
  } catch {}
  throw new UsageError(`--${name} takes a JSON object, e.g. '{"level": 50}'`);
}

export function positional(ctx: Context, index: number, name: string): string {
  const value = ctx.args[index];
  if (value === undefined) throw new UsageError(`missing ${name}`);
  return value;
}

/**
 * A device as the registry API answers it (shared/schemas/device.ts is its schema; that module
 * imports without .ts extensions, so Node-side code cannot load it).
 */
/** A device as the edge answers it (shared/schemas/api/device.ts). */
export type DeviceView = Device;
