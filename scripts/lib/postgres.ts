/**
 * A private, throwaway PostgreSQL cluster for tests and benchmarks: initdb into a temporary
 * folder, start on a free 127.0.0.1 port, stop and delete afterwards. It uses the Debian
 * `postgresql` package's binaries (`/usr/lib/postgresql/<major>/bin`) and never touches the
 * machine's own cluster. PostgreSQL refuses to run as root, so as root every command runs as the
 * `postgres` OS user (`runuser`), which then owns the data folder.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { freePort } from "./local-edge.ts";

export interface PostgresCluster {
  /** `postgres://edgemesh:<password>@127.0.0.1:<port>/edgemesh` */
  url: string;
  port: number;
  dataDir: string;
  /** Major version of the server binaries (15 on Debian 12). */
  major: number;
  /** Stops the server (fast shutdown: open connections are cut), keeping the data. */
  stop(): void;
  /** Starts it again on the same port after stop(). */
  start(): void;
  running(): boolean;
  /** The server's (postmaster's) process id while it runs. */
  serverPid(): number | undefined;
  /** Stops the server and deletes the folder. */
  destroy(): void;
}

/** The bin folder of the newest installed PostgreSQL, or undefined when there is none. */
export function findPostgresBin(): { bin: string; major: number } | undefined {
  const fromEnv = process.env.EDGEMESH_PG_BIN;
  if (fromEnv && existsSync(join(fromEnv, "initdb"))) return { bin: fromEnv, major: Number(/(\d+)/.exec(fromEnv)?.[1] ?? 0) };
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return undefined;
  const majors = readdirSync(root)
    .map(Number)
    .filter((n) => Number.isInteger(n) && existsSync(join(root, String(n), "bin/initdb")))
    .sort((a, b) => b - a);
  const major = majors[0];
  return major === undefined ? undefined : { bin: join(root, String(major), "bin"), major };
}

export const NO_POSTGRES_MESSAGE =
  "PostgreSQL is not installed: the series tests and bench/series need the Debian package (`apt-get install postgresql`; .ci/run installs it), or EDGEMESH_PG_BIN pointing at a bin folder with initdb and pg_ctl";

function osUser(): { name: string; uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const ids = (flag: string) => Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8" }).trim());
  try {
    return { name: "postgres", uid: ids("-u"), gid: ids("-g") };
  } catch {
    throw new Error("running as root, but there is no `postgres` OS user to run PostgreSQL as (the Debian package creates it)");
  }
}

export async function startPostgres(options: { port?: number; log?: boolean } = {}): Promise<PostgresCluster> {
  const found = findPostgresBin();
  if (!found) throw new Error(NO_POSTGRES_MESSAGE);
  const user = osUser();
  const port = options.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), "edgemesh-pg-"));
  const dataDir = join(dir, "data");
  const password = randomBytes(12).toString("hex");
  const pwfile = join(dir, "pw");
  writeFileSync(pwfile, `${password}\n`);
  if (user) {
    chownSync(dir, user.uid, user.gid);
    chownSync(pwfile, user.uid, user.gid);
  }
  chmodSync(dir, 0o700);

  const run = (command: string, args: string[]) => {
    const [file, argv] = user ? ["runuser", ["-u", user.name, "--", join(found.bin, command), ...args]] : [join(found.bin, command), args];
    const result = spawnSync(file, argv, { cwd: dir, encoding: "utf8", env: { ...process.env, LC_ALL: "C.UTF-8" } });
    if (result.status !== 0) throw new Error(`${command} ${args.join(" ")} failed (${result.status}):\n${result.stdout}\n${result.stderr}`);
    return result.stdout;
  };

  run("initdb", [
    "-D",
    dataDir,
    "-U",
    "edgemesh",
    `--pwfile=${pwfile}`,
    "--auth-local=trust",
    "--auth-host=scram-sha-256",
    "-E",
    "UTF8",
    "--no-sync",
  ]);
  rmSync(pwfile);
  // Small and fast: a test cluster needs no durability across a machine crash.
  const settings = [
    `-c listen_addresses=127.0.0.1`,
    `-c port=${port}`,
    `-c unix_socket_directories=${dir}`,
    "-c fsync=off",
    "-c synchronous_commit=off",
    "-c full_page_writes=off",
    "-c shared_buffers=64MB",
    "-c max_connections=60",
  ].join(" ");
  const logFile = join(dir, "server.log");
  let up = false;
  const start = () => {
    run("pg_ctl", ["-D", dataDir, "-l", logFile, "-o", settings, "-w", "-t", "30", "start"]);
    up = true;
  };
  const stop = () => {
    if (!up) return;
    run("pg_ctl", ["-D", dataDir, "-m", "fast", "-w", "-t", "30", "stop"]);
    up = false;
  };
  start();
  run("createdb", ["-h", dir, "-p", String(port), "-U", "edgemesh", "edgemesh"]);

  let destroyed = false;
  const destroy = () => {
    if (destroyed) return;
    destroyed = true;
    try {
      stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  // A run that ends, or is interrupted, must not leave a server behind.
  process.once("exit", destroy);
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      destroy();
      process.exit(128 + (signal === "SIGINT" ? 2 : 15));
    });
  }

  return {
    url: `postgres://edgemesh:${password}@127.0.0.1:${port}/edgemesh`,
    port,
    dataDir,
    major: found.major,
    stop,
    start,
    running: () => up,
    serverPid: () => {
      try {
        return up ? Number(readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n")[0]) : undefined;
      } catch {
        return undefined;
      }
    },
    destroy,
  };
}

/** The current OS user, for messages. */
export function whoami(): string {
  return userInfo().username;
}
