/**
 * The price table (dated, with its sources; docs/cost.md shows it) and the arithmetic that turns
 * billable operations (shared/billing.ts's kinds) into a monthly bill. Used alike by bench/cost.ts,
 * the dashboard's pipeline page and `edgemesh cost`, so the three cannot disagree.
 *
 * `usd` is usage beyond the plan's included monthly quotas; the Workers Paid subscription itself
 * is `base_usd`, reported apart (a homelab pays it whatever it sends).
 */

/** When the prices below were read, and where. */
export const PRICES_AS_OF = "2026-12-05";

export const CLOUDFLARE_SOURCES = [
  "https://developers.cloudflare.com/workers/platform/pricing/",
  "https://developers.cloudflare.com/queues/platform/pricing/",
  "https://developers.cloudflare.com/d1/platform/pricing/",
  "https://developers.cloudflare.com/durable-objects/platform/pricing/",
  "https://developers.cloudflare.com/r2/platform/pricing/",
] as const;

export const AWS_IOT_SOURCES = [
  "https://aws.amazon.com/iot-core/pricing/",
  "https://aws.amazon.com/iot-core/pricing/additional-details/",
] as const;

/** Workers Paid, per month. */
export const WORKERS_PAID_BASE_USD = 5;

export interface PriceLine {
  /** What the line is called on a bill. */
  readonly line: string;
  /** Included per month on Workers Paid. */
  readonly included: number;
  /** USD per million beyond that. */
  readonly usdPerMillion: number;
}

export const CLOUDFLARE_PRICES = {
  worker_requests: { line: "Workers requests", included: 10_000_000, usdPerMillion: 0.3 },
  queue_ops: { line: "Queues operations (write + read + delete, per 64 KB)", included: 1_000_000, usdPerMillion: 0.4 },
  d1_rows_read: { line: "D1 rows read", included: 25_000_000_000, usdPerMillion: 0.001 },
  d1_rows_written: { line: "D1 rows written (incl. index writes)", included: 50_000_000, usdPerMillion: 1 },
  do_requests: { line: "Durable Objects requests (WebSocket messages in at 20:1)", included: 1_000_000, usdPerMillion: 0.15 },
  do_rows_read: { line: "Durable Objects SQLite rows read", included: 25_000_000_000, usdPerMillion: 0.001 },
  do_rows_written: { line: "Durable Objects SQLite rows written", included: 50_000_000, usdPerMillion: 1 },
  r2_class_a: { line: "R2 class A operations", included: 1_000_000, usdPerMillion: 4.5 },
  r2_class_b: { line: "R2 class B operations", included: 10_000_000, usdPerMillion: 0.36 },
} as const satisfies Record<string, PriceLine>;
export type CloudflareLine = keyof typeof CLOUDFLARE_PRICES;

/** Storage, per GB-month beyond what is included (D1's database limit is 10 GB). */
export const STORAGE_PRICES = {
  d1: { line: "D1 storage", includedGb: 5, usdPerGbMonth: 0.75, limitGb: 10 },
  do: { line: "Durable Objects SQLite storage", includedGb: 5, usdPerGbMonth: 0.2 },
  r2: { line: "R2 storage", includedGb: 10, usdPerGbMonth: 0.015 },
} as const;

/** AWS IoT Core, US East (N. Virginia), per month. */
export const AWS_IOT_PRICES = {
  /** Messaging: per million messages, each metered per 5 KB (first billion a month). */
  messagesUsdPerMillion: 1,
  messageUnitBytes: 5 * 1024,
  /** Connectivity: per million minutes of connection. */
  connectionMinutesUsdPerMillion: 0.08,
  /** Rules engine: per million rules triggered, and per million actions executed. */
  rulesUsdPerMillion: 0.15,
  actionsUsdPerMillion: 0.15,
} as const;

/** The billable kinds (shared/billing.ts) as the bill's lines. */
export type Ops = Partial<Record<string, number>>;

export function billedLines(ops: Ops): Record<CloudflareLine, number> {
  const n = (k: string) => ops[k] ?? 0;
  return {
    worker_requests: n("worker_invocations"),
    queue_ops: n("queue_write_ops") + n("queue_read_ops") + n("queue_delete_ops"),
    d1_rows_read: n("d1_rows_read"),
    d1_rows_written: n("d1_rows_written"),
    do_requests: n("do_requests") + n("do_ws_messages_in") / 20,
    do_rows_read: n("do_rows_read"),
    do_rows_written: n("do_rows_written"),
    r2_class_a: n("r2_class_a"),
    r2_class_b: n("r2_class_b"),
  };
}

export interface BillLine {
  key: CloudflareLine | "d1_storage";
  line: string;
  quantity: number;
  included: number;
  usd: number;
}

export interface Bill {
  /** Usage beyond the included quotas (the $5 subscription is not in it). */
  monthly_usd: number;
  /** The Workers Paid subscription. */
  base_usd: number;
  /** Every line, most expensive first. */
  lines: BillLine[];
}

const round = (usd: number) => Math.round(usd * 100) / 100;

/** A month's bill for a month's operations (and, optionally, the D1 storage held that month). */
export function monthlyBill(opsPerMonth: Ops, d1StorageGb = 0): Bill {
  const billed = billedLines(opsPerMonth);
  const lines: BillLine[] = (Object.keys(CLOUDFLARE_PRICES) as CloudflareLine[]).map((key) => {
    const price: PriceLine = CLOUDFLARE_PRICES[key];
    const quantity = billed[key];
    return {
      key,
      line: price.line,
      quantity,
      included: price.included,
      usd: (Math.max(0, quantity - price.included) / 1e6) * price.usdPerMillion,
    };
  });
  const d1 = STORAGE_PRICES.d1;
  lines.push({
    key: "d1_storage",
    line: `${d1.line} (GB-month)`,
    quantity: d1StorageGb,
    included: d1.includedGb,
    usd: Math.max(0, d1StorageGb - d1.includedGb) * d1.usdPerGbMonth,
  });
  lines.sort((a, b) => b.usd - a.usd);
  return { monthly_usd: round(lines.reduce((s, l) => s + l.usd, 0)), base_usd: WORKERS_PAID_BASE_USD, lines };
}

/** Scales operations counted over `seconds` to a 30-day month. */
export function perMonth(ops: Ops, seconds: number): Ops {
  const factor = (30 * 86_400) / Math.max(1, seconds);
  return Object.fromEntries(Object.entries(ops).map(([k, v]) => [k, (v ?? 0) * factor]));
}

export interface AwsLoad {
  /** Device messages a month. */
  messages: number;
  /** Publishes (or HTTP requests) a month: one per message, or one per batch. */
  publishes: number;
  /** Bytes of one publish (a batch's whole body). */
  publishBytes: number;
  /** Devices (or agents) connected all month. */
  connections: number;
  /** Rule actions per publish (store, evaluate alerts, ...). */
  actionsPerPublish: number;
}

/**
 * AWS IoT Core for the same load: messaging per 5 KB of each publish, a rule triggered per publish
 * with its actions, connection minutes for the whole month. IoT Core only: the database and
 * the functions the rules call are not in it (docs/cost.md).
 */
export function awsIotMonthly(load: AwsLoad): number {
  const p = AWS_IOT_PRICES;
  const units = load.publishes * Math.max(1, Math.ceil(load.publishBytes / p.messageUnitBytes));
  const minutes = load.connections * 30 * 24 * 60;
  return round(
    (units / 1e6) * p.messagesUsdPerMillion +
      (minutes / 1e6) * p.connectionMinutesUsdPerMillion +
      (load.publishes / 1e6) * p.rulesUsdPerMillion +
      ((load.publishes * load.actionsPerPublish) / 1e6) * p.actionsUsdPerMillion,
  );
}

/** Days until D1's database limit at a steady growth, from what is stored now. */
export function daysUntilD1Full(bytesPerDay: number, storedBytes = 0): number {
  if (bytesPerDay <= 0) return Number.POSITIVE_INFINITY;
  return Math.max(0, (STORAGE_PRICES.d1.limitGb * 1e9 - storedBytes) / bytesPerDay);
}
