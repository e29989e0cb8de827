/**
 * The archive tool's one error type, carrying the exit code it ends with: 2 for a usage error
 * (a bad flag or value: nothing was done), 1 for a failure (something could not be read or sent).
 */
export const EXIT = { ok: 0, failures: 1, usage: 2 } as const;

export class CliError extends Error {
  override name = "CliError";
  readonly exitCode: number;

  constructor(message: string, exitCode: number = EXIT.failures, options: { cause?: unknown } = {}) {
    super(message, options);
    this.exitCode = exitCode;
  }
}

export class UsageError extends CliError {
  override name = "UsageError";

  constructor(message: string) {
    super(message, EXIT.usage);
  }
}
