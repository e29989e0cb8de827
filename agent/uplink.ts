/**
 * Drains the outbox to the edge in order, one batch in flight: a message leaves the outbox only
 * once the edge answered for it. Outages and overload back off with jitter and retry the same
 * batch; the edge deduplicates on message id, so a batch resent after a lost answer stores
 * nothing twice.
 */
import { type AgentResult, backoffMs, type EdgeClient, EdgeError } from "./edge-client.ts";
import type { Logger } from "./log.ts";
import type { Outbox, OutboxMessage } from "./outbox.ts";
import type { Stats } from "./stats.ts";

export interface UplinkOptions {
  batchMax: number;
  retryInitialMs: number;
  retryMaxMs: number;
}

export class Uplink {
  #running = false;
  #wake: (() => void) | undefined;
  #done: Promise<void> | undefined;
  #unsubscribe: (() => void) | undefined;
  /** Called with the ids the edge answered for (stored or rejected for good). */
  onAcknowledged: (ids: string[]) => void = () => {};

  readonly outbox: Outbox;
  readonly edge: EdgeClient;
  readonly stats: Stats;
  readonly log: Logger;
  readonly options: UplinkOptions;

  constructor(outbox: Outbox, edge: EdgeClient, stats: Stats, log: Logger, options: UplinkOptions) {
    this.outbox = outbox;
    this.edge = edge;
    this.stats = stats;
    this.log = log;
    this.options = options;
  }

  start(): void {
    this.#running = true;
    this.#unsubscribe = this.outbox.onChange(() => this.#wake?.());
    this.#done = this.#loop();
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.#unsubscribe?.();
    this.#wake?.();
    await this.#done;
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    });
  }

  async #loop(): Promise<void> {
    let attempt = 0;
    // A device whose burst is smaller than its share of a batch is refused the whole share
    // (batch_too_large): halve the batch until it fits, then grow back.
    let batchSize = this.options.batchMax;
    while (this.#running) {
      const batch = this.outbox.peek(batchSize);
      if (batch.length === 0) {
        await this.#sleep(1000);
        continue;
      }
      let results: AgentResult[];
      try {
        results = await this.edge.send(batch.map((m) => JSON.parse(m.body)));
      } catch (error) {
        if (error instanceof EdgeError && refusedForItsContent(error)) {
          if (batch.length > 1) {
            // Something in the batch makes the edge refuse it whole (too large once inflated, a
            // field it cannot take): halve until the message at fault travels alone.
            batchSize = Math.max(1, Math.floor(batch.length / 2));
            this.log.warn("the edge refused a batch whole; sending smaller ones", { status: error.status, batch_size: batchSize });
            continue;
          }
          // Alone and still refused for what it holds: it can never be taken. Dropped, counted
          // and logged with the edge's reason, so one bad message cannot stop every other.
          const [message] = batch as [OutboxMessage];
          this.stats.count("rejected_by_edge");
          this.stats.error("uplink", error);
          this.log.error("the edge refuses this message for good; dropped", {
            id: message.id,
            device: message.device,
            error: error.message,
          });
          this.outbox.remove([message.seq]);
          this.onAcknowledged([message.id]);
          continue;
        }
        this.stats.count("uplink_errors");
        this.stats.error("uplink", error);
        this.stats.edge = { ...this.stats.edge, reachable: false, last_error: String((error as Error).message) };
        const delay = backoffMs(attempt++, this.options.retryInitialMs, this.options.retryMaxMs);
        const retryAfter = (error as { retryAfterMs?: number }).retryAfterMs ?? 0;
        this.log.warn("uplink failed; retrying", { error: (error as Error).message, retry_in_ms: Math.max(delay, retryAfter) });
        if (error instanceof EdgeError && (error.status === 401 || error.status === 403))
          this.log.error("the edge refuses the agent's token; check edge.token_file and the agent's registration");
        await this.#waitOut(Math.max(delay, retryAfter));
        continue;
      }
      this.stats.edge = { reachable: true, last_ok: new Date().toISOString(), last_error: this.stats.edge.last_error };
      const answered: number[] = [];
      const ids: string[] = [];
      let retryAfterMs = 0;
      let tooLarge = false;
      results.forEach((result, i) => {
        const message = batch[i];
        if (!message) return;
        if (result.status === "retry") {
          retryAfterMs = Math.max(retryAfterMs, (result.retry_after_s ?? 0) * 1000);
          if (result.code === "batch_too_large") tooLarge = true;
          return;
        }
        answered.push(message.seq);
        ids.push(message.id);
        if (result.status === "stored") this.stats.count("forwarded");
        else {
          this.stats.count("rejected_by_edge");
          if (result.code === "forbidden" && result.issues.some((i) => i.path.endsWith(".device"))) {
            if (this.stats.unknownDevice(message.device, "not bridged by this agent on the edge (metadata.agent)"))
              this.log.warn("device unknown to the edge", { device: message.device });
          } else
            this.log.warn("edge rejected a message", { id: message.id, device: message.device, code: result.code, issues: result.issues });
        }
      });
      this.outbox.remove(answered);
      this.onAcknowledged(ids);
      batchSize = tooLarge ? Math.max(1, Math.floor(batch.length / 2)) : Math.min(this.options.batchMax, batchSize * 2);
      if (tooLarge) {
        this.log.info("a device's burst is below its share of the batch; smaller batches", { batch_size: batchSize });
        continue;
      }
      if (answered.length < batch.length) {
        // Some devices were over their rate: wait, then resend just those (the rest left already).
        await this.#waitOut(Math.max(retryAfterMs, backoffMs(attempt++, this.options.retryInitialMs, this.options.retryMaxMs)));
      } else attempt = 0;
    }
  }

  /** Sleeps through a backoff that a new message must not cut short. */
  async #waitOut(ms: number): Promise<void> {
    const until = Date.now() + ms;
    while (this.#running && Date.now() < until) await this.#sleep(until - Date.now());
  }
}

/**
 * The edge refuses a whole request for what the messages hold — too large (413), or a field its
 * batch schema rejects (400 `invalid_payload`) — not for the agent's credential or a fault of its
 * own, which are retried.
 */
function refusedForItsContent(error: EdgeError): boolean {
  return error.status === 413 || (error.status === 400 && error.code === "invalid_payload");
}
