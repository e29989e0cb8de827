/** What every view gets. */
import type { Api } from "./api.ts";
import type { ConnectionState, LiveConnection } from "./live.ts";
import type { Session } from "./session.ts";
import type { Store } from "./store.ts";
import type { Role } from "./types.ts";

export interface Ctx {
  api: Api;
  session: Session;
  store: Store;
  live: LiveConnection;
  /** Whether the signed-in person has at least this role. */
  can(role: Role): boolean;
  /** Changes the route's query (filters) without adding a history entry. */
  setQuery(query: URLSearchParams): void;
  /** Registers a listener for the combined connection state; returns its remover. */
  onConnection(listener: (state: ConnectionState) => void): () => void;
  /** Reloads the registry's device and room lists (a new device appeared, a room changed). */
  reloadFleet(): Promise<void>;
  /** Draws the current screen again from scratch (after a change it shows). */
  rerender(): void;
}

/** A view draws into its root and returns what to do when it is left. */
export type View = (root: HTMLElement, ctx: Ctx, params: Record<string, string>, query: URLSearchParams) => (() => void) | undefined;
