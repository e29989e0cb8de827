/**
 * edgemesh archive: the archive tool (tools/archive), with the edge's URL and token from the
 * CLI's settings for `replay` when not given.
 */
import { main as archiveMain } from "../../archive/main.ts";
import type { Io } from "../command.ts";

export const ARCHIVE_SUMMARY = "list, export and replay the R2 archive (the edgemesh-archive tool)";

export async function archive(argv: string[], io: Io, edge: { url?: string; token?: string }): Promise<number> {
  const env = { ...io.env };
  if (!env.EDGEMESH_URL && edge.url) env.EDGEMESH_URL = edge.url;
  if (!env.EDGEMESH_TOKEN && edge.token) env.EDGEMESH_TOKEN = edge.token;
  return archiveMain(argv, { stdout: io.stdout, stderr: io.stderr, env });
}
