#!/usr/bin/env node
/**
 * edgemesh-archive: list, export and replay the archive the Worker writes to R2 — over R2's S3 API
 * or any S3-compatible store. `node tools/archive/main.ts --help`; docs/archive.md has examples.
 *
 * Exit codes: 0 done; 1 something could not be read or sent, or the edge rejected a message (the
 * summary says what); 2 a usage error (nothing was done).
 */
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { ArchiveKind } from "../../shared/schemas/archive.ts";
import { CliError, EXIT, UsageError } from "./errors.ts";
import type { CommandResult } from "./output.ts";
import { parseRange } from "./range.ts";
import type { ReplayOptions } from "./replay.ts";
import type { StoreOptions } from "./store.ts";

const NAME = "edgemesh-archive";
const RUN = "node tools/archive/main.ts";

const COMMON_HELP = `Store (every command):
  --endpoint URL           S3 endpoint; for R2 https://<account id>.r2.cloudflarestorage.com
                           [env R2_ENDPOINT, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL]
  --account-id ID          R2 account id, instead of --endpoint [env R2_ACCOUNT_ID]
  --bucket NAME            the archive bucket (default edgemesh-archive) [env EDGEMESH_ARCHIVE_BUCKET]
  --region REGION          signing region (default auto, R2's; most other stores want us-east-1) [env AWS_REGION]
  --access-key-id ID       [env R2_ACCESS_KEY_ID, then AWS_ACCESS_KEY_ID]
  --secret-access-key KEY  [env R2_SECRET_ACCESS_KEY, then AWS_SECRET_ACCESS_KEY]; prefer the
                           environment: a flag shows in the process list and the shell history
Range:
  --from TIME              required: now, 90m, 24h, 7d (that long ago), 2026-11-23 (midnight UTC),
                           2026-11-23T14:00 (UTC unless it carries Z or ±hh:mm)
  --to TIME                default now; the range is [from, to) on each message's timestamp
  --kind events|metrics    one archive (default both)
Output:
  --json                   the summary as one JSON object on stdout, no progress bar
  --no-progress            no progress bar (it is drawn on stderr, on a terminal only)
  -h, --help               this help`;

const COMMANDS = {
  list: {
    summary: "what the archive holds in a time range, per kind and hour (manifests only)",
    usage: `${RUN} list --from TIME [--to TIME] [--kind KIND] [--objects] [store options]`,
    extra: "  --objects                also list every object's key",
  },
  export: {
    summary: "a time range's messages to a local NDJSON file, by timestamp, one copy per message",
    usage: `${RUN} export --from TIME [--to TIME] --out FILE [--kind KIND] [store options]`,
    extra: "  --out FILE               the NDJSON file to write (- for stdout; the summary then goes to stderr)",
  },
  replay: {
    summary: "a time range's messages back through the edge's publish endpoint (idempotent)",
    usage: `${RUN} replay --from TIME [--to TIME] --url URL [--token TOKEN] [--kind KIND] [store options]`,
    extra: `  --url URL                the edge, e.g. http://127.0.0.1:8787 [env EDGEMESH_URL]
  --token TOKEN            a service's token with publish permissions for the replayed exchanges
                           and routing keys [env EDGEMESH_TOKEN; prefer it, as for the secret key]
  --batch-size N           messages per request (default 100, at most 500)`,
  },
} as const;

type Command = keyof typeof COMMANDS;

function topHelp(): string {
  return `${NAME}: list, export and replay the edgemesh archive (R2, or any S3-compatible store)

Usage: ${RUN} <command> [options]

Commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(8)} ${c.summary}`)
  .join("\n")}

'${RUN} <command> --help' shows a command's options. Exit codes: 0 done; 1 something could not
be read or sent, or the edge rejected messages (the summary says what); 2 usage error.`;
}

function commandHelp(command: Command): string {
  const c = COMMANDS[command];
  return `${NAME} ${command}: ${c.summary}\n\nUsage: ${c.usage}\n\n${c.extra}\n${COMMON_HELP}`;
}

const OPTIONS = {
  endpoint: { type: "string" },
  "account-id": { type: "string" },
  bucket: { type: "string" },
  region: { type: "string" },
  "access-key-id": { type: "string" },
  "secret-access-key": { type: "string" },
  from: { type: "string" },
  to: { type: "string" },
  kind: { type: "string" },
  json: { type: "boolean", default: false },
  "no-progress": { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
  objects: { type: "boolean", default: false },
  out: { type: "string" },
  url: { type: "string" },
  token: { type: "string" },
  "batch-size": { type: "string" },
} as const;

/** Flags each command takes besides the common ones: any other is a usage error. */
const ONLY: Record<Command, string[]> = { list: ["objects"], export: ["out"], replay: ["url", "token", "batch-size"] };
const COMMAND_FLAGS = new Set(Object.values(ONLY).flat());

type Env = Record<string, string | undefined>;

function storeOptions(values: Record<string, unknown>, env: Env): StoreOptions {
  const str = (name: string) => (typeof values[name] === "string" ? (values[name] as string) : undefined);
  const accountId = str("account-id") ?? env.R2_ACCOUNT_ID;
  const endpoint =
    str("endpoint") ??
    (accountId ? `https://${accountId}.r2.cloudflarestorage.com` : undefined) ??
    env.R2_ENDPOINT ??
    env.AWS_ENDPOINT_URL_S3 ??
    env.AWS_ENDPOINT_URL;
  if (!endpoint) throw new UsageError("say where the archive is: --endpoint URL or --account-id ID (or R2_ENDPOINT, R2_ACCOUNT_ID)");
  try {
    new URL(endpoint);
  } catch {
    throw new UsageError(`--endpoint "${endpoint}" is not a URL`);
  }
  const accessKeyId = str("access-key-id") ?? env.R2_ACCESS_KEY_ID ?? env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = str("secret-access-key") ?? env.R2_SECRET_ACCESS_KEY ?? env.AWS_SECRET_ACCESS_KEY;
  if (Boolean(accessKeyId) !== Boolean(secretAccessKey)) {
    throw new UsageError("give both an access key id and a secret access key (R2_ACCESS_KEY_ID and R2_SECRET_ACCESS_KEY), or neither");
  }
  return {
    endpoint,
    bucket: str("bucket") ?? env.EDGEMESH_ARCHIVE_BUCKET ?? "edgemesh-archive",
    region: str("region") ?? env.AWS_REGION ?? "auto",
    ...(accessKeyId && secretAccessKey ? { accessKeyId, secretAccessKey } : {}),
  };
}

function kinds(value: unknown): ArchiveKind[] {
  if (value === undefined) return ["events", "metrics"];
  const parsed = ArchiveKind.safeParse(value);
  if (!parsed.success) throw new UsageError(`--kind is events or metrics, not "${String(value)}"`);
  return [parsed.data];
}

interface Io {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: Env;
}

const processIo: Io = {
  stdout: (text) => process.stdout.write(`${text}\n`),
  stderr: (text) => process.stderr.write(`${text}\n`),
  env: process.env,
};

async function run(argv: string[], io: Io): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === "-h" || first === "--help" || first === "help") {
    io.stdout(topHelp());
    return first === undefined ? EXIT.usage : EXIT.ok;
  }
  if (!(first in COMMANDS)) throw new UsageError(`no command "${first}": use list, export or replay (--help)`);
  const command = first as Command;

  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({ args: rest, options: OPTIONS, strict: true, allowPositionals: false, allowNegative: false }));
  } catch (error) {
    throw new UsageError(`${error instanceof Error ? error.message : String(error)} (${RUN} ${command} --help)`);
  }
  if (values.help) {
    io.stdout(commandHelp(command));
    return EXIT.ok;
  }
  for (const flag of COMMAND_FLAGS) {
    if (values[flag] !== undefined && values[flag] !== false && !ONLY[command].includes(flag)) {
      throw new UsageError(`${command} takes no --${flag} (${RUN} ${command} --help)`);
    }
  }

  const range = parseRange(values.from as string | undefined, values.to as string | undefined);
  const selected = kinds(values.kind);
  const json = values.json === true;
  const showProgress = !json && values["no-progress"] !== true;
  // The S3 client and the commands load only once the arguments are good: help and usage
  // errors answer at once.
  const { progressBar } = await import("./progress.ts");
  let options: ReplayOptions | undefined;
  if (command === "export" && typeof values.out !== "string") throw new UsageError("export needs --out FILE (or --out - for stdout)");
  if (command === "replay") {
    const url = (values.url as string | undefined) ?? io.env.EDGEMESH_URL;
    const token = (values.token as string | undefined) ?? io.env.EDGEMESH_TOKEN;
    if (!url) throw new UsageError("replay needs --url (the edge, e.g. http://127.0.0.1:8787) or EDGEMESH_URL");
    if (!/^https?:\/\//.test(url)) throw new UsageError(`--url "${url}" is not an http(s) URL`);
    if (!token) throw new UsageError("replay needs a service token: EDGEMESH_TOKEN (or --token)");
    const batchSize = values["batch-size"] === undefined ? 100 : Number(values["batch-size"]);
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 500)
      throw new UsageError("--batch-size is a whole number from 1 to 500");
    options = { kinds: selected, range, url, token, batchSize, progress: progressBar("replay", "messages", showProgress) };
  }

  const connection = storeOptions(values, io.env);
  const { ArchiveStore } = await import("./store.ts");
  const store = new ArchiveStore(connection);
  let result: CommandResult;
  try {
    if (command === "list") {
      const { list } = await import("./list.ts");
      result = await list(store, { kinds: selected, range, objects: values.objects === true });
    } else if (command === "export") {
      const { exportRange } = await import("./export.ts");
      result = await exportRange(store, {
        kinds: selected,
        range,
        out: values.out as string,
        progress: progressBar("export", "objects", showProgress),
      });
    } else {
      const { replay } = await import("./replay.ts");
      result = await replay(store, options as ReplayOptions);
    }
  } finally {
    store.close();
  }
  const toStderr = command === "export" && values.out === "-";
  const print = toStderr ? io.stderr : io.stdout;
  print(json ? JSON.stringify({ ...result.summary, exit_code: result.exitCode }) : result.text);
  return result.exitCode;
}

/** Runs the tool; never throws: errors are printed and become the exit code. */
export async function main(argv: string[], io: Io = processIo): Promise<number> {
  try {
    return await run(argv, io);
  } catch (error) {
    const exitCode = error instanceof CliError ? error.exitCode : EXIT.failures;
    const message =
      error instanceof CliError
        ? error.message
        : `unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`;
    io.stderr(`${NAME}: ${message}`);
    // A script reading --json output gets an answer on stdout either way.
    if (argv.includes("--json")) io.stdout(JSON.stringify({ error: message, exit_code: exitCode }));
    return exitCode;
  }
}

const invoked = process.argv[1] ? realpathSync(process.argv[1]) : "";
if (invoked === fileURLToPath(import.meta.url)) process.exitCode = await main(process.argv.slice(2));
