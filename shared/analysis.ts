/**
 * The default analysis on the stream (issue 16 item 6; seed 000 flow 1's "AI Analysis"): every
 * numeric metric of every device is scored against its own rolling baseline, with no rule needed,
 * by the built-in detector (shared/anomaly.ts, with its trend and noise-floor options on). This
 * file is the per-device state and its verdicts, without I/O: the device's AlertActor keeps a
 * `Baselines` in memory, hands it each batch, stores what it asks to store (one row per metric,
 * written lazily) and publishes what it returns (docs/ai.md).
 *
 * A verdict that starts an anomaly raises an alert (with its evidence) and publishes an analysis
 * result on the `ai` exchange; the first normal reading after it clears the alert and publishes
 * the result "normal". Readings in between publish nothing: no message per reading.
 */
import { z } from "zod";
import { RollingDetector, type ScoreOptions } from "./anomaly.ts";
import { newMessageId } from "./ids.ts";
import type { Alert, AnomalyEvidence } from "./schemas/alerts.ts";
import { type EnvelopeOf, SCHEMA_VERSION, type Severity } from "./schemas/message.ts";

/** The default rule (migration 0031): an `anomaly` rule without a metric analyses every metric. */
export const DEFAULT_ANALYSIS_RULE_ID = "a7a70000-0000-4000-8000-000000000001";
/** The model name analysis results carry (`ai.result.<model>.<device>.<metric>`). */
export const ANALYSIS_MODEL = "edgemesh-baseline";
/** The detector's options for the default (off for alert rules): docs/ai.md. */
export const ANALYSIS_OPTIONS: ScoreOptions = { trend: true, resolution: true };
/**
 * A metric's baseline with new readings is written when this long has passed since its last write
 * (and at once on every verdict change): a fast meter costs a row per metric per half minute, not
 * per few readings, and a slow sensor (an actor evicted between its readings) keeps every reading.
 */
export const PERSIST_MS = 30_000;
/** Metrics analysed per device (readings of more metrics are left out: a limit on memory and rows). */
export const MAX_METRICS = 256;

export interface AnalysisSettings {
  rule_id: string;
  rule_name: string;
  severity: z.infer<typeof Severity>;
  score: number;
  window: number;
  min_samples: number;
}

export interface AnalysisReading {
  id: string;
  /** The reading's time (the message's `timestamp`), ms. */
  at: number;
  metric: string;
  value: number;
}

/** What the consumer hands a device's actor for one batch: each metric's settings and the readings. */
export interface AnalysisBatch {
  settings: Record<string, AnalysisSettings>;
  readings: AnalysisReading[];
  /** Metrics of the batch a rule for the metric took over (tuned or silenced): their open default alert clears. */
  retired?: string[];
}

/** One metric's stored baseline (one storage row per metric). */
export const StoredBaseline = z.strictObject({
  values: z.array(z.number()).max(500),
  last_at: z.number(),
  /** Ids of the readings at `last_at`: a redelivered batch is skipped, readings older than it too. */
  last_ids: z.array(z.string()).max(64),
  alert: z.looseObject({ id: z.string() }).nullable(),
});
export type StoredBaseline = z.infer<typeof StoredBaseline>;

export interface BaselineStore {
  load(metric: string): unknown;
  save(metric: string, baseline: StoredBaseline): void;
  /** The metric whose stored open alert has this id. */
  find(alertId: string): string | undefined;
  /** The metrics whose stored row holds an open alert. */
  open(): string[];
}

export interface Transition {
  alert: Alert;
  transition: "fired" | "cleared" | "acknowledged";
  cause?: string;
}

export interface Outcome {
  transitions: Transition[];
  results: EnvelopeOf<"inference_result">[];
  /** Readings scored (after warm-up), and skipped as already seen. */
  scored: number;
  skipped: number;
}

interface Live {
  detector: RollingDetector;
  last_at: number;
  last_ids: string[];
  alert: Alert | null;
  unsaved: number;
  dirty: boolean;
  /** When this instance last wrote the metric's row (0: not yet, so the first new reading is written). */
  saved_at: number;
}

const fmt = (n: number): string => String(Number(n.toPrecision(4)));

function title(device: string, e: AnomalyEvidence): string {
  return (
    `${e.metric} anomalous on ${device}: ${fmt(e.value)} vs baseline ${fmt(e.level)} ± ${fmt(e.sigma)} ` +
    `(z ${fmt(e.score)} ≥ ${e.threshold}, ${e.window} readings)`
  );
}

/** The analysis result published on the `ai` exchange for a verdict change (an `inference_result`). */
export function resultMessage(
  device: string,
  alert: Alert,
  verdict: "anomaly" | "normal",
  e: AnomalyEvidence,
): EnvelopeOf<"inference_result"> {
  const fp = (name: string, value: number) => ({ name, shape: [1], datatype: "FP64" as const, data: [value] });
  return {
    id: `${alert.id}.analysis.${verdict}`,
    correlation_id: alert.id,
    causation_id: e.reading_id,
    source: "ai-analysis",
    exchange: "ai",
    routing_key: `ai.result.${ANALYSIS_MODEL}.${device}.${e.metric}`,
    type: "inference_result",
    timestamp: e.at,
    received_at: new Date().toISOString(),
    metadata: { device, metric: e.metric, verdict, alert_id: alert.id },
    schema_version: SCHEMA_VERSION,
    payload: {
      model: ANALYSIS_MODEL,
      request_id: e.reading_id,
      cached: false,
      outputs: [
        { name: "anomalous", shape: [1], datatype: "BOOL", data: [verdict === "anomaly"] },
        fp("value", e.value),
        fp("level", e.level),
        fp("sigma", e.sigma),
        fp("score", e.score),
        fp("threshold", e.threshold),
        { name: "window", shape: [1], datatype: "INT32", data: [e.window] },
      ],
    },
  };
}

/** A device's baselines: one rolling detector per metric, its dedup mark and its open alert. */
export class Baselines {
  readonly #metrics = new Map<string, Live>();
  #openLoaded = false;
  readonly store: BaselineStore;

  constructor(store: BaselineStore) {
    this.store = store;
  }

  #live(metric: string, window: number, minSamples: number): Live | undefined {
    let live = this.#metrics.get(metric);
    if (!live) {
      if (this.#metrics.size >= MAX_METRICS) return undefined;
      const parsed = StoredBaseline.safeParse(this.store.load(metric));
      // A row that does not parse (written by another version) starts the metric afresh.
      const stored = parsed.success ? parsed.data : { values: [], last_at: Number.NEGATIVE_INFINITY, last_ids: [], alert: null };
      live = {
        detector: new RollingDetector(window, minSamples, stored.values, ANALYSIS_OPTIONS),
        last_at: stored.last_at,
        last_ids: stored.last_ids,
        alert: stored.alert as Alert | null,
        unsaved: 0,
        dirty: false,
        saved_at: 0,
      };
      this.#metrics.set(metric, live);
    }
    // A rule changed the window or the warm-up: the readings so far are kept.
    if (live.detector.size !== window || live.detector.minSamples !== minSamples)
      live.detector = new RollingDetector(window, minSamples, live.detector.values, ANALYSIS_OPTIONS);
    return live;
  }

  /** Scores a batch's readings in time order; returns the alert transitions and the results to publish. */
  observe(device: string, batch: AnalysisBatch): Outcome {
    const out: Outcome = { transitions: [], results: [], scored: 0, skipped: 0 };
    const touched = new Set<string>();
    // In time order; readings of the same time keep the batch's order (a stable sort).
    const readings = [...batch.readings].sort((a, b) => a.at - b.at);
    for (const r of readings) {
      const settings = batch.settings[r.metric];
      if (!settings || !Number.isFinite(r.value)) continue;
      const live = this.#live(r.metric, settings.window, settings.min_samples);
      if (!live) continue;
      if (r.at < live.last_at || (r.at === live.last_at && live.last_ids.includes(r.id))) {
        out.skipped++;
        continue;
      }
      if (r.at > live.last_at) live.last_ids = [];
      live.last_at = r.at;
      if (live.last_ids.length < 64) live.last_ids.push(r.id);
      const before = live.detector.values.length;
      const score = live.detector.push(r.value);
      live.unsaved++;
      touched.add(r.metric);
      // Warm-up: no verdict before `min_samples` readings.
      if (before < settings.min_samples) continue;
      out.scored++;
      const evidence: AnomalyEvidence = {
        metric: r.metric,
        value: r.value,
        level: score.level,
        sigma: score.sigma,
        score: score.score,
        threshold: settings.score,
        window: before,
        at: new Date(r.at).toISOString(),
        reading_id: r.id,
      };
      const anomalous = score.score >= settings.score;
      if (anomalous && !live.alert) {
        const at = evidence.at;
        live.alert = {
          id: newMessageId(),
          rule_id: settings.rule_id,
          rule_name: settings.rule_name,
          device,
          status: "active",
          severity: settings.severity,
          metric: r.metric,
          value: r.value,
          title: title(device, evidence),
          started_at: at,
          updated_at: at,
          escalated: false,
          notifications: 1,
          evidence,
        };
        live.dirty = true;
        out.transitions.push({ alert: live.alert, transition: "fired", cause: r.id });
        out.results.push(resultMessage(device, live.alert, "anomaly", evidence));
      } else if (anomalous && live.alert) {
        // Still anomalous: the open alert keeps the latest evidence (stored with the baseline), nothing is published.
        live.alert = { ...live.alert, value: r.value, evidence };
      } else if (!anomalous && live.alert) {
        const at = evidence.at;
        const cleared: Alert = { ...live.alert, status: "cleared", cleared_at: at, updated_at: at };
        live.alert = null;
        live.dirty = true;
        out.transitions.push({ alert: cleared, transition: "cleared", cause: r.id });
        out.results.push(resultMessage(device, cleared, "normal", evidence));
      }
    }
    const retired = new Set(batch.retired ?? []);
    if (retired.size > 0) out.transitions.push(...this.retire((a) => a.metric !== undefined && retired.has(a.metric), Date.now()));
    for (const metric of touched) this.#persist(metric, false);
    return out;
  }

  /** The open alerts of the default analysis, stored or in memory (the store is asked once per wake-up). */
  openAlerts(): Alert[] {
    if (!this.#openLoaded) for (const metric of this.store.open()) if (!this.#metrics.has(metric)) this.#live(metric, 500, 1);
    this.#openLoaded = true;
    return [...this.#metrics.values()].flatMap((l) => (l.alert ? [l.alert] : []));
  }

  /**
   * Clears the open alerts `which` selects — their rule went or was disabled, or a rule for the
   * metric took it over — as a rule's alert clears when its rule goes. No analysis result: the
   * reading did not change verdict.
   */
  retire(which: (alert: Alert) => boolean, now: number): Transition[] {
    const out: Transition[] = [];
    for (const alert of this.openAlerts()) {
      if (!which(alert) || !alert.metric) continue;
      const live = this.#metrics.get(alert.metric);
      if (!live) continue;
      const at = new Date(now).toISOString();
      live.alert = null;
      live.dirty = true;
      this.#persist(alert.metric, true);
      out.push({ alert: { ...alert, status: "cleared", cleared_at: at, updated_at: at }, transition: "cleared" });
    }
    return out;
  }

  /** Acknowledges an open alert of the default analysis; undefined when none has that id. */
  acknowledge(alertId: string, by: string, now = Date.now()): Transition | undefined {
    // Not in memory (the actor restarted since): the stored row, loaded as it is.
    const stored = [...this.#metrics].some(([, l]) => l.alert?.id === alertId) ? undefined : this.store.find(alertId);
    if (stored) this.#live(stored, 500, 1);
    for (const [metric, live] of this.#metrics) {
      if (live.alert?.id !== alertId) continue;
      if (live.alert.status === "acknowledged") return { alert: live.alert, transition: "acknowledged" };
      const at = new Date(now).toISOString();
      live.alert = { ...live.alert, status: "acknowledged", acknowledged_at: at, acknowledged_by: by, updated_at: at };
      live.dirty = true;
      this.#persist(metric, true);
      return { alert: live.alert, transition: "acknowledged" };
    }
    return undefined;
  }

  /** Writes a metric's row when it changed state, or PERSIST_MS after its last write (`force`: now). */
  #persist(metric: string, force: boolean, now = Date.now()): void {
    const live = this.#metrics.get(metric);
    if (!live || !(force || live.dirty || (live.unsaved > 0 && now - live.saved_at >= PERSIST_MS))) return;
    this.store.save(metric, {
      values: [...live.detector.values],
      last_at: live.last_at,
      last_ids: live.last_ids,
      alert: live.alert as StoredBaseline["alert"],
    });
    live.unsaved = 0;
    live.dirty = false;
    live.saved_at = now;
  }
}
