#!/usr/bin/env node
/**
 * edgemesh: the operator's CLI for a local or deployed edge — devices, rooms, commands, a live
 * tail, dead letters, people's tokens, and the archive. `edgemesh --help`; docs/cli.md.
 *
 * Exit codes (errors.ts): 0 done; 1 the edge failed or could not be reached, or the work failed;
 * 2 usage error; 3 credentials refused; 4 not found; 5 rejected by the edge (invalid, conflict);
 * 6 timed out waiting.
 */
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { type ParseArgsOptionsConfig, parseArgs } from "node:util";
import { EdgeClient } from "./client.ts";
import type { CommandSpec, Io, OptionSpec, Values } from "./command.ts";
import { ARCHIVE_SUMMARY, archive } from "./commands/archive.ts";
import { commands } from "./commands/commands.ts";
import { config } from "./commands/config.ts";
import { cost } from "./commands/cost.ts";
import { deadLetters } from "./commands/dead-letters.ts";
import { devices } from "./commands/devices.ts";
import { rooms } from "./commands/rooms.ts";
import { tail } from "./commands/tail.ts";
import { tokens } from "./commands/tokens.ts";
import { CliError, EdgeError, EXIT, exitCodeOf, UsageError } from "./errors.ts";
import { resolveSettings } from "./settings.ts";

const NAME = "edgemesh";

const GROUPS: Record<string, { summary: string; commands: Record<string, CommandSpec> }> = {
  devices: { summary: "register, list, show (with the twin), rotate tokens, remove", commands: devices },
  rooms: { summary: "rooms, their members and aggregates, commands to a whole room", commands: rooms },
  commands: { summary: "send commands to devices and watch them finish", commands: commands },
  "dead-letters": { summary: "what failed, and replaying it", commands: deadLetters },
  tokens: { summary: "login tokens for people, access tokens", commands: tokens },
  config: { summary: "the config file: where the edge is and its token", commands: config },
};
const SINGLE: Record<string, CommandSpec> = { tail, cost };

const GLOBAL: Record<string, OptionSpec> = {
  url: { type: "string", value: "URL", help: "the edge, e.g. http://127.0.0.1:8787 [env EDGEMESH_URL]" },
  token: {
    type: "string",
    value: "TOKEN",
    help: "admin or access token [env EDGEMESH_TOKEN; prefer it: a flag shows in the process list]",
  },
  config: { type: "string", value: "FILE", help: "config file {url, token} [env EDGEMESH_CONFIG; default ~/.config/edgemesh/config.json]" },
  json: { type: "boolean", help: "machine-readable JSON on stdout (tail: one object a line)" },
  "no-progress": { type: "boolean", help: "no progress bars (drawn on stderr, on a terminal only)" },
  help: { type: "boolean", short: "h", help: "help for a command" },
};

const EXIT_HELP = `Exit codes: 0 done; 1 the edge failed or could not be reached, or the work failed; 2 usage
error; 3 credentials refused (401/403/429); 4 not found; 5 rejected (invalid input, conflict);
6 timed out waiting (--timeout).`;

function optionLines(options: Record<string, OptionSpec>): string {
  return Object.entries(options)
    .map(([name, o]) => {
      const flag = `${o.short ? `-${o.short}, ` : "    "}--${name}${o.value ? ` ${o.value}` : ""}`;
      return `  ${flag.padEnd(34)} ${o.help}`;
    })
    .join("\n");
}

function topHelp(): string {
  const lines = [
    ...Object.entries(GROUPS).map(([name, g]) => `  ${name.padEnd(14)} ${g.summary}: ${Object.keys(g.commands).join(", ")}`),
    ...Object.entries(SINGLE).map(([name, c]) => `  ${name.padEnd(14)} ${c.summary}`),
    `  ${"archive".padEnd(14)} ${ARCHIVE_SUMMARY}`,
  ];
  return `${NAME}: operate an edgemesh edge (local or deployed)

Usage: ${NAME} <command> [subcommand] [arguments] [options]

Commands:
${lines.join("\n")}

Options for every command:
${optionLines(GLOBAL)}

'${NAME} <command> --help' shows a command's options. The edge and token come from the flags, then
EDGEMESH_URL / EDGEMESH_TOKEN, then the config file.
${EXIT_HELP}`;
}

function groupHelp(name: string): string {
  const group = GROUPS[name];
  if (!group) return topHelp();
  return `${NAME} ${name}: ${group.summary}

Usage: ${NAME} ${name} <subcommand> [arguments] [options]

Subcommands:
${Object.entries(group.commands)
  .map(([sub, c]) => `  ${sub.padEnd(10)} ${c.summary}`)
  .join("\n")}

'${NAME} ${name} <subcommand> --help' shows its options.`;
}

function commandHelp(path: string, spec: CommandSpec): string {
  return [
    `${NAME} ${path}: ${spec.summary}`,
    "",
    `Usage: ${NAME} ${path}${spec.args?.length ? ` ${spec.args.join(" ")}` : ""} [options]`,
    ...(spec.options && Object.keys(spec.options).length ? ["", "Options:", optionLines(spec.options)] : []),
    "",
    "Options for every command:",
    optionLines(GLOBAL),
    ...(spec.notes ? ["", spec.notes] : []),
    "",
    EXIT_HELP,
  ].join("\n");
}

const processIo: Io = {
  stdout: (text) => process.stdout.write(`${text}\n`),
  stderr: (text) => process.stderr.write(`${text}\n`),
  env: process.env,
  tty: Boolean(process.stderr.isTTY),
};

/** The edge from the environment or config file, for the archive tool's replay. */
function archiveEdge(io: Io): { url?: string; token?: string } {
  try {
    const settings = resolveSettings({}, io.env);
    return { url: settings.url, token: settings.token };
  } catch {
    return {}; // replay alone needs the edge, and the archive tool says so itself
  }
}

async function run(argv: string[], io: Io, signal: AbortSignal): Promise<number> {
  const [first, second, ...more] = argv;
  if (first === undefined || first === "help" || first === "-h" || first === "--help") {
    io.stdout(topHelp());
    return first === undefined ? EXIT.usage : EXIT.ok;
  }
  if (first === "archive") return archive(argv.slice(1), io, archiveEdge(io));

  let path: string;
  let spec: CommandSpec;
  let rest: string[];
  const group = GROUPS[first];
  if (group) {
    if (second === undefined || second === "-h" || second === "--help" || second === "help") {
      io.stdout(groupHelp(first));
      return second === undefined ? EXIT.usage : EXIT.ok;
    }
    const sub = group.commands[second];
    if (!sub)
      throw new UsageError(`no command "${first} ${second}": use ${Object.keys(group.commands).join(", ")} (${NAME} ${first} --help)`);
    [path, spec, rest] = [`${first} ${second}`, sub, more];
  } else if (SINGLE[first]) {
    [path, spec, rest] = [first, SINGLE[first], argv.slice(1)];
  } else {
    throw new UsageError(`no command "${first}" (${NAME} --help)`);
  }

  let values: Values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: rest,
      options: { ...GLOBAL, ...spec.options } as ParseArgsOptionsConfig,
      strict: true,
      allowPositionals: true,
    }) as { values: Values; positionals: string[] });
  } catch (error) {
    throw new UsageError(`${error instanceof Error ? error.message : String(error)} (${NAME} ${path} --help)`);
  }
  if (values.help) {
    io.stdout(commandHelp(path, spec));
    return EXIT.ok;
  }
  const most = spec.args?.some((a) => a.endsWith("...]")) ? Number.POSITIVE_INFINITY : (spec.args?.length ?? 0);
  if (positionals.length > most)
    throw new UsageError(`${NAME} ${path} takes ${spec.args?.join(" ") || "no arguments"}; got "${positionals.join(" ")}"`);

  const json = values.json === true;
  let client: EdgeClient | undefined;
  if (!spec.local) {
    const settings = resolveSettings(
      { url: values.url as string | undefined, token: values.token as string | undefined, config: values.config as string | undefined },
      io.env,
    );
    for (const warning of settings.warnings) io.stderr(`${NAME}: warning: ${warning}`);
    client = new EdgeClient(settings);
  }
  const result = await spec.run({
    args: positionals,
    values,
    // A local command never calls the edge; the placeholder fails loudly if one ever did.
    client: client ?? new EdgeClient({ url: "http://edge.invalid", token: undefined, source: { url: "", token: "" }, warnings: [] }),
    json,
    progress: io.tty && !json && values["no-progress"] !== true,
    io,
    signal,
  });
  if (json && result.data !== undefined) io.stdout(JSON.stringify(result.data, null, 2));
  else if (!json && result.text) io.stdout(result.text);
  return result.exitCode ?? EXIT.ok;
}

/** Runs the CLI; never throws: errors are printed and become the exit code. */
export async function main(argv: string[], io: Io = processIo, signal: AbortSignal = new AbortController().signal): Promise<number> {
  try {
    return await run(argv, io, signal);
  } catch (error) {
    const exitCode = exitCodeOf(error);
    const message =
      error instanceof CliError || error instanceof EdgeError
        ? error.message
        : `unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`;
    io.stderr(`${NAME}: ${message}`);
    // A script reading --json gets an answer on stdout either way.
    if (argv.includes("--json")) {
      const edge = error as { code?: unknown; status?: unknown; body?: unknown };
      io.stdout(
        JSON.stringify({
          error: message,
          exit_code: exitCode,
          ...(typeof edge.status === "number" && { status: edge.status, code: edge.code }),
        }),
      );
    }
    return exitCode;
  }
}

const invoked = process.argv[1] ? realpathSync(process.argv[1]) : "";
if (invoked === fileURLToPath(import.meta.url)) {
  const controller = new AbortController();
  process.once("SIGINT", () => controller.abort());
  process.exitCode = await main(process.argv.slice(2), processIo, controller.signal);
}
