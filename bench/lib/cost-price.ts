/**
 * bench/cost's arithmetic beside its measurements: the archive queues' 30 s packs, which a short
 * window cannot form, priced as they form deployed, and the ops per accepted message at a load
 * (docs/cost.md, "Measured at the load's own rates").
 */
import { billedLines, type Ops } from "../../shared/billing-prices.ts";
import { packWindow } from "../../shared/bus/topology.ts";
import { type Kind, LOADS, type Load, SEED_004_RATE } from "./cost-load.ts";
import type { Paced } from "./cost-pace.ts";

export interface Measured {
  messages: number;
  ops: Record<string, number>;
  d1Bytes: number;
  /** Accepted messages still waiting in a twin's archive pack when the measurement ended. */
  archiveLeft: number;
  paced: Paced;
}

/** Archive packs form over ARCHIVE_PACK_SECONDS (30 s deployed); the bench's edge holds them longer (see below). */
export const ARCHIVE = packWindow("archive.metrics") ?? { windowMs: 30_000, maxMessages: 100 };
export const BENCH_ARCHIVE_SECONDS = 600;
export const ARCHIVE_QUEUES = ["archive.metrics", "archive.events"];
/** An archived envelope's bytes, for the 64 KB units of a pack priced by arithmetic: a meter's, read from a twin after the run. */
export const archiveEnvelope = { bytes: 1_000 };

/**
 * The archive pack a kind's messages form deployed at a load: what one twin sends in the
 * archive's window (ARCHIVE_PACK_SECONDS, 30 s), at most 100 — and the queue operations per
 * message of that pack (write + read + delete per 64 KB).
 */
export function archivePack(kind: Kind, load: Load): { messages: number; opsPerMessage: number } {
  const perTwin = SEED_004_RATE[kind] * LOADS[load] * (ARCHIVE.windowMs / 1000);
  const messages = Math.min(ARCHIVE.maxMessages, Math.max(1, Math.floor(perTwin)));
  const units = Math.ceil((messages * archiveEnvelope.bytes) / 65_536);
  return { messages, opsPerMessage: (3 * units) / messages };
}

/**
 * The archive consumers' R2 work, deployed: a batch every 30 s (max_batch_timeout; at seed 004's
 * loads a batch never fills its 100 packs sooner), each an object and its hour's manifest
 * (2 class A, 1 class B), for archive.metrics and archive.events, the same at every load.
 */
const ARCHIVE_BATCHES_A_MONTH = 2 * ((30 * 86_400) / 30);
export const ARCHIVE_R2: Ops = { r2_class_a: 2 * ARCHIVE_BATCHES_A_MONTH, r2_class_b: ARCHIVE_BATCHES_A_MONTH };

/**
 * Ops per accepted message at a load: the measurement, plus the archive packs it left, priced as
 * they form deployed. R2 operations are left out: the bench's archive batches are not the
 * deployed ones (ARCHIVE_R2).
 */
export function perMessage(m: Measured, kind: Kind, load: Load): Ops {
  const ops: Ops = Object.fromEntries(Object.entries(m.ops).map(([k, v]) => [k, v / m.messages]));
  ops.r2_class_a = 0;
  ops.r2_class_b = 0;
  const share = (m.archiveLeft / m.messages) * (archivePack(kind, load).opsPerMessage / 3);
  for (const k of ["queue_write_ops", "queue_read_ops", "queue_delete_ops"]) ops[k] = (ops[k] ?? 0) + share;
  return ops;
}

const round = (n: number, digits = 2) => Number(n.toFixed(digits));

/** The billed lines per message as bench/cost prints them. */
export const shown = (per: Ops) => {
  const billed = billedLines(per);
  return {
    d1_rows_written: round(billed.d1_rows_written),
    do_rows_written: round(billed.do_rows_written),
    queue_ops: round(billed.queue_ops),
    do_requests: round(billed.do_requests),
    d1_rows_read: round(billed.d1_rows_read),
    worker_requests: round(billed.worker_requests),
    r2_ops: round(billed.r2_class_a + billed.r2_class_b),
  };
};
