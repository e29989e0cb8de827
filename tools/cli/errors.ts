/**
 * The edgemesh CLI's exit codes, one per kind of outcome a script may want to tell apart. The
 * error types are the archive tool's (tools/archive/errors.ts: an error carrying its exit code)
 * and, for what the edge answers, the one every client shares (shared/edge-error.ts).
 */

import { EdgeError } from "../../shared/edge-error.ts";
import { CliError } from "../archive/errors.ts";

export { CliError, UsageError } from "../archive/errors.ts";

export const EXIT = {
  /** Done. */
  ok: 0,
  /** The edge failed (5xx), could not be reached, or the work failed (a command answered failed). */
  failure: 1,
  /** A bad command line: nothing was sent. */
  usage: 2,
  /** The edge refused the credentials (401, 403, 429 after failed attempts). */
  auth: 3,
  /** No such device, room, command or dead letter (404). */
  notFound: 4,
  /** The edge rejected the request: invalid input or a conflict (other 4xx). */
  rejected: 5,
  /** Waited as long as asked (--timeout) without the awaited outcome. */
  timeout: 6,
} as const;

/** An error answer from the edge (shared/edge-error.ts); its status maps to the exit code. */
export { EdgeError };

/** The exit code an error ends the CLI with. */
export function exitCodeOf(error: unknown): number {
  if (error instanceof CliError) return error.exitCode;
  if (error instanceof EdgeError) return exitCodeFor(error.status);
  return EXIT.failure;
}

export function exitCodeFor(status: number): number {
  if (status === 401 || status === 403 || status === 429) return EXIT.auth;
  if (status === 404) return EXIT.notFound;
  if (status >= 400 && status < 500) return EXIT.rejected;
  return EXIT.failure;
}
