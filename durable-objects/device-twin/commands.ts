/**
 * Commands of the twin (seed 002's command flow): the waiters of long polls and of callers
 * awaiting an outcome, and the `command_result` message a finished command becomes. The
 * commands themselves are kept by the durable command outbox (../command-outbox.ts).
 */

import type { EnvelopeOf } from "../../shared/schemas/message";
import { SCHEMA_VERSION } from "../../shared/schemas/message";
import type { Command } from "../command-outbox";
import type { Json } from "../twin-document";
import type { TwinProfile } from "./types";

/** The longest a caller may wait for a command or a poll. */
export const MAX_WAIT_MS = 30_000;
/** Long polls held open at once per device; more just answer at once. */
export const MAX_POLLERS = 8;

export type CommandOutcome = { status: "succeeded" | "failed" | "expired"; result?: Json; error?: string };

/** A command's outcome as a `command_result` message, carrying the command's correlation id. */
export function resultMessage(
  profile: TwinProfile,
  command: Command,
  id: string,
  now: number,
  outcome: CommandOutcome,
): EnvelopeOf<"command_result"> {
  const at = new Date(now).toISOString();
  return {
    id,
    correlation_id: command.correlation_id,
    causation_id: command.id,
    source: profile.id,
    type: "command_result",
    exchange: "home.events",
    routing_key: `home.${profile.room ?? "unassigned"}.${profile.id}.command_result`,
    timestamp: at,
    received_at: at,
    payload: {
      command_id: command.id,
      status: outcome.status,
      ...(outcome.result !== undefined && { result: outcome.result }),
      ...(outcome.error !== undefined && { error: outcome.error }),
    },
    metadata: { origin: "twin", command: command.command },
    schema_version: SCHEMA_VERSION,
  } as EnvelopeOf<"command_result">;
}

/** Who waits: callers awaiting a command's outcome, and long polls awaiting any command. */
export class Waiters {
  readonly #commands = new Map<string, Set<(command: Command) => void>>();
  readonly #polls = new Set<() => void>();

  /** Resolves with the command once it finishes, or with `current()` after `waitMs`. */
  awaitCommand(id: string, waitMs: number, current: () => Command | undefined): Promise<Command | undefined> {
    return new Promise((resolve) => {
      const waiters = this.#commands.get(id) ?? new Set();
      const done = (command: Command) => {
        clearTimeout(timer);
        waiters.delete(done);
        resolve(command);
      };
      const timer = setTimeout(
        () => {
          waiters.delete(done);
          resolve(current());
        },
        Math.min(waitMs, MAX_WAIT_MS),
      );
      waiters.add(done);
      this.#commands.set(id, waiters);
    });
  }

  finished(command: Command): void {
    for (const wake of this.#commands.get(command.id) ?? []) wake(command);
    this.#commands.delete(command.id);
  }

  /** Waits up to `waitMs` for a wake-up; false when too many polls wait already. */
  async poll(waitMs: number): Promise<boolean> {
    if (waitMs <= 0 || this.#polls.size >= MAX_POLLERS) return false;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(
        () => {
          this.#polls.delete(wake);
          resolve();
        },
        Math.min(waitMs, MAX_WAIT_MS),
      );
      const wake = () => {
        clearTimeout(timer);
        resolve();
      };
      this.#polls.add(wake);
    });
    return true;
  }

  wakePolls(): void {
    for (const wake of this.#polls) wake();
    this.#polls.clear();
  }

  clear(): void {
    this.wakePolls();
    this.#commands.clear();
  }
}
