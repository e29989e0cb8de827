/**
 * The session's PUBLISHes into the twin, batched: ONE `twin.ingest` call in flight per session;
 * the PUBLISHes that arrive while it runs go together in the next call (no timer: an idle device's
 * publish goes at once, with no added latency). Each publish learns its own outcome — a message
 * the twin refuses gets its own reason code while the others of its batch succeed — and its
 * PUBACK waits for its batch's durable write (the twin answers after its outbox row is written).
 * The order of the PUBACKs is publish.ts's (the connection's deferred steps, session.ts).
 */
import type { MessageType } from "../../shared/schemas/message";
import type { Failure, Rejection } from "../device-twin";
import { twinStub } from "../stubs";

/** Items of one call at most (the twin takes a device's burst, 1,000 by default, in one request). */
const MAX_BATCH = 100;

/** Who publishes and how the twin reads the items: items go together only when all of this matches. */
export interface BatchKey {
  secret: string;
  credentialHash?: string;
  defaultType: MessageType;
  allowedTypes: MessageType[];
}

/** One publish's share of its batch's answer. */
export type ItemOutcome = { ok: true; accepted: boolean; rejected?: Rejection } | Failure;

interface Entry {
  key: BatchKey;
  tag: string;
  item: unknown;
  resolve: (outcome: ItemOutcome) => void;
  reject: (error: unknown) => void;
}

export class TwinBatcher {
  readonly #env: Env;
  readonly #device: string;
  #queue: Entry[] = [];
  #running = false;
  /** twin.ingest calls made (the batching's effect, for the tests and /metrics). */
  calls = 0;

  constructor(env: Env, device: string) {
    this.#env = env;
    this.#device = device;
  }

  submit(key: BatchKey, item: unknown): Promise<ItemOutcome> {
    const tag = JSON.stringify([key.secret, key.credentialHash ?? null, key.defaultType, key.allowedTypes]);
    return new Promise<ItemOutcome>((resolve, reject) => {
      this.#queue.push({ key, tag, item, resolve, reject });
      if (!this.#running) void this.#run();
    });
  }

  async #run(): Promise<void> {
    this.#running = true;
    try {
      while (this.#queue.length > 0) {
        const tag = (this.#queue[0] as Entry).tag;
        const batch: Entry[] = [];
        const rest: Entry[] = [];
        for (const entry of this.#queue) (entry.tag === tag && batch.length < MAX_BATCH ? batch : rest).push(entry);
        this.#queue = rest;
        await this.#call(batch);
      }
    } finally {
      this.#running = false;
    }
  }

  async #call(batch: Entry[]): Promise<void> {
    const { key } = batch[0] as Entry;
    try {
      this.calls++;
      const outcome = await twinStub(this.#env, this.#device).ingest({
        secret: key.secret,
        ...(key.credentialHash !== undefined && { credentialHash: key.credentialHash }),
        items: batch.map((e) => e.item),
        preRejected: [],
        defaultType: key.defaultType,
        allowedTypes: key.allowedTypes,
        transport: "mqtt",
      });
      if (!outcome.ok && outcome.code === "batch_too_large" && batch.length > 1) {
        // A device whose burst is below the batch: its publishes one by one, as before batching.
        for (const entry of batch) await this.#call([entry]);
        return;
      }
      if (!outcome.ok) {
        for (const entry of batch) entry.resolve(outcome);
        return;
      }
      const rejected = new Map(outcome.rejected.map((r) => [r.index, r]));
      batch.forEach((entry, index) => {
        const refusal = rejected.get(index);
        entry.resolve(refusal ? { ok: true, accepted: false, rejected: refusal } : { ok: true, accepted: true });
      });
    } catch (error) {
      for (const entry of batch) entry.reject(error);
    }
  }
}
