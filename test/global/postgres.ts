/**
 * globalSetup of the workers-postgres project: a private PostgreSQL cluster for the run, with the
 * series migrations applied, and a tiny control server on 127.0.0.1 through which the outage
 * tests (inside workerd, where no process can be started) stop and start it.
 */
import { createServer } from "node:http";
import postgres from "postgres";
import type { TestProject } from "vitest/node";
import { migrate } from "../../infra/postgres/migrate.ts";
import { startPostgres } from "../../scripts/lib/postgres.ts";

declare module "vitest" {
  export interface ProvidedContext {
    pgUrl: string;
    pgControlUrl: string;
  }
}

export default async function setup(project: TestProject) {
  const pg = await startPostgres();
  const sql = postgres(pg.url, { max: 1, onnotice: () => {} });
  try {
    await migrate(sql);
  } finally {
    await sql.end();
  }
  const control = createServer((req, res) => {
    try {
      if (req.method === "POST" && req.url === "/stop") pg.stop();
      else if (req.method === "POST" && req.url === "/start") pg.start();
      else if (req.url !== "/status") {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ running: pg.running() }));
    } catch (error) {
      res.writeHead(500).end(String(error));
    }
  });
  await new Promise<void>((resolve) => control.listen(0, "127.0.0.1", resolve));
  const address = control.address();
  if (typeof address !== "object" || !address) throw new Error("the PostgreSQL control server has no address");
  project.provide("pgUrl", pg.url);
  project.provide("pgControlUrl", `http://127.0.0.1:${address.port}`);
  return async () => {
    await new Promise((resolve) => control.close(resolve));
    pg.destroy();
  };
}
