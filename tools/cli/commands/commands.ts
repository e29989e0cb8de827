/**
 * edgemesh commands: send a command to a device, list and show them, and watch one until it
 * finishes. Watching polls the command (twice a second): it works through any proxy and needs
 * only viewer rights; `edgemesh tail --stream command` shows the same changes live.
 */
import type { Command, CommandStatus } from "../../../shared/api-types.ts";
import { type CommandSpec, type Context, int, jsonOption, list, type OptionSpec, pairs, positional, str } from "../command.ts";
import { EXIT, UsageError } from "../errors.ts";
import { fields, rowsTable } from "../output.ts";

const FINAL: CommandStatus[] = ["succeeded", "failed", "expired"];

const path = (device: string) => `/v1/devices/${encodeURIComponent(device)}/commands`;

export const COMMAND_OPTIONS: Record<string, OptionSpec> = {
  param: { type: "string", multiple: true, value: "KEY=VALUE", help: "a parameter (repeatable); JSON values (22.5, true) are typed" },
  params: { type: "string", value: "JSON", help: "all parameters as one JSON object" },
  ttl: { type: "string", value: "SECONDS", help: "how long it may wait for an offline device (default 300)" },
};

/** The command request from `<command>` at `index` and the parameter flags. */
export function commandBody(ctx: Context, index: number) {
  const command = positional(ctx, index, "the command (e.g. set_temperature)");
  const params = jsonOption(ctx.values, "params");
  const single = pairs(list(ctx.values, "param"), "param", true);
  const ttl = int(ctx.values, "ttl", 1, 30 * 86_400);
  return { command, parameters: { ...params, ...single }, ...(ttl !== undefined && { ttl_s: ttl }), wait_s: 0 };
}

function commandFields(c: Command): string {
  return fields([
    ["id", c.id],
    ["command", c.command],
    ["parameters", c.parameters],
    ["status", c.status],
    ["attempts", c.attempts],
    ["created", c.created_at],
    ["expires", c.expires_at],
    ["result", c.result],
    ["error", c.error],
    ["history", c.history.map((h) => `${h.status} ${h.at}`).join(", ")],
  ]);
}

function exitFor(command: Command): number {
  return command.status === "succeeded" ? EXIT.ok : FINAL.includes(command.status) ? EXIT.failure : EXIT.timeout;
}

/** Follows a command until it finishes or `timeoutS` passes, printing each new status (not with --json). */
async function watch(ctx: Context, device: string, start: Command, timeoutS: number): Promise<Command> {
  const deadline = Date.now() + timeoutS * 1000;
  let current = start;
  let seen = current.history.length;
  if (!ctx.json) for (const h of current.history) ctx.io.stderr(`${h.at}  ${h.status}`);
  while (!FINAL.includes(current.status) && Date.now() < deadline && !ctx.signal.aborted) {
    await new Promise((r) => setTimeout(r, 500));
    current = (await ctx.client.get<{ command: Command }>(`${path(device)}/${encodeURIComponent(current.id)}`)).command;
    if (!ctx.json) for (const h of current.history.slice(seen)) ctx.io.stderr(`${h.at}  ${h.status}`);
    seen = current.history.length;
  }
  return current;
}

const WATCH_OPTIONS: Record<string, OptionSpec> = {
  timeout: { type: "string", value: "SECONDS", help: "stop watching after this long (default 60); exit code 6" },
};

export const commands: Record<string, CommandSpec> = {
  send: {
    summary: "send a command to a device; --watch follows it until it finishes",
    args: ["<device>", "<command>"],
    options: {
      ...COMMAND_OPTIONS,
      watch: { type: "boolean", short: "w", help: "wait for the device's answer, printing each status" },
      ...WATCH_OPTIONS,
    },
    notes: `Example: edgemesh commands send thermostat set_temperature --param temperature=22.5 --watch
Exit codes with --watch: 0 succeeded, 1 failed or expired, 6 still running at --timeout.`,
    async run(ctx) {
      const device = positional(ctx, 0, "the device id");
      const body = commandBody(ctx, 1);
      const timeout = int(ctx.values, "timeout", 1, 86_400) ?? 60;
      if (str(ctx.values, "timeout") !== undefined && ctx.values.watch !== true) throw new UsageError("--timeout goes with --watch");
      const { command } = await ctx.client.post<{ command: Command }>(path(device), body);
      if (ctx.values.watch !== true)
        return { data: { command }, text: `Sent ${command.command} to ${device}: ${command.id} (${command.status}).` };
      const final = await watch(ctx, device, command, timeout);
      return { data: { command: final }, text: commandFields(final), exitCode: exitFor(final) };
    },
  },
  watch: {
    summary: "follow a command until it succeeds, fails or expires",
    args: ["<device>", "<command id>"],
    options: WATCH_OPTIONS,
    notes: "Exit codes: 0 succeeded, 1 failed or expired, 6 still running at --timeout.",
    async run(ctx) {
      const device = positional(ctx, 0, "the device id");
      const id = positional(ctx, 1, "the command id");
      const timeout = int(ctx.values, "timeout", 1, 86_400) ?? 60;
      const { command } = await ctx.client.get<{ command: Command }>(`${path(device)}/${encodeURIComponent(id)}`);
      const final = await watch(ctx, device, command, timeout);
      return { data: { command: final }, text: commandFields(final), exitCode: exitFor(final) };
    },
  },
  list: {
    summary: "a device's commands, newest first",
    args: ["<device>"],
    options: {
      status: { type: "string", value: "STATUS", help: "queued, delivered, succeeded, failed or expired" },
      limit: { type: "string", value: "N", help: "at most N (default 50)" },
    },
    async run(ctx) {
      const device = positional(ctx, 0, "the device id");
      const answer = await ctx.client.get<{ commands: Command[] }>(path(device), {
        status: str(ctx.values, "status"),
        limit: int(ctx.values, "limit", 1, 500),
      });
      const text = rowsTable(
        answer.commands,
        [
          ["ID", "id"],
          ["COMMAND", "command"],
          ["STATUS", "status"],
          ["ATTEMPTS", "attempts"],
          ["CREATED", "created_at"],
        ],
        "(no commands)",
      );
      return { data: answer, text };
    },
  },
  show: {
    summary: "one command with its status history",
    args: ["<device>", "<command id>"],
    async run(ctx) {
      const device = positional(ctx, 0, "the device id");
      const id = positional(ctx, 1, "the command id");
      const answer = await ctx.client.get<{ command: Command }>(`${path(device)}/${encodeURIComponent(id)}`);
      return { data: answer, text: commandFields(answer.command) };
    },
  },
};
