/** The Worker: HTTP routes (Hono), the queue consumers, and the Durable Object classes. */
import { Hono } from "hono";
import { AgentLink as AgentLinkClass } from "../durable-objects/agent-link";
import { AlertActor as AlertActorClass } from "../durable-objects/alert-actor";
import { AutomationClock as AutomationClockClass } from "../durable-objects/automation-clock";
import { DeviceTwin as DeviceTwinClass } from "../durable-objects/device-twin";
import { LiveHub as LiveHubClass } from "../durable-objects/live-hub";
import { MqttSession as MqttSessionClass } from "../durable-objects/mqtt/session";
import { RoomActor as RoomActorClass } from "../durable-objects/room";
import { maintainSeries } from "../platform/series/maintenance";
import { pruneHistory } from "../queues/history";
import { handleQueue } from "../queues/index";
import { checkSystem, SYSTEM_CRON } from "../queues/system-monitor";
import { countBillable, meterEnv, meterQueueBatch } from "../shared/billing";
import { meterDurableObject } from "../shared/billing-do";
import { readConfig } from "../shared/config";
import { log, setLogLevel } from "../shared/log";
import { ApiError, errorResponse, onError } from "./errors";
import type { AppEnv } from "./middleware/auth";
import { observe } from "./middleware/observe";
import { strictQueryKeys } from "./middleware/query-keys";
import { agentRoutes } from "./routes/agent";
import { aiRoutes } from "./routes/ai";
import { alertRoutes } from "./routes/alerts";
import { authRoutes } from "./routes/auth";
import { automationRoutes } from "./routes/automations";
import { dashboardRoutes } from "./routes/dashboard";
import { deadLetterRoutes } from "./routes/dead-letters";
import { deviceSelfRoutes } from "./routes/device-self";
import { deviceRoutes } from "./routes/devices";
import { energyRoutes } from "./routes/energy";
import { ingestRoutes } from "./routes/ingest";
import { liveRoutes } from "./routes/live";
import { localGate, localRoutes } from "./routes/local";
import { loginTokenRoutes } from "./routes/login-tokens";
import { messageRoutes } from "./routes/messages";
import { metricsRoutes } from "./routes/metrics";
import { mqttRoutes } from "./routes/mqtt";
import { roomRoutes } from "./routes/rooms";
import { seriesRoutes } from "./routes/series";
import { systemRoutes } from "./routes/system";
import { twinRoutes } from "./routes/twins";

// The Durable Object classes, metered (shared/billing-do.ts): their SQLite rows, alarms and
// WebSocket messages counted, their env's bindings metered. Same names, same methods.
export const AgentLink = meterDurableObject(AgentLinkClass);
export type AgentLink = AgentLinkClass;
export const AlertActor = meterDurableObject(AlertActorClass);
export type AlertActor = AlertActorClass;
export const AutomationClock = meterDurableObject(AutomationClockClass);
export type AutomationClock = AutomationClockClass;
export const DeviceTwin = meterDurableObject(DeviceTwinClass);
export type DeviceTwin = DeviceTwinClass;
export const LiveHub = meterDurableObject(LiveHubClass);
export type LiveHub = LiveHubClass;
export const MqttSession = meterDurableObject(MqttSessionClass);
export type MqttSession = MqttSessionClass;
export const RoomActor = meterDurableObject(RoomActorClass);
export type RoomActor = RoomActorClass;

export const app = new Hono<AppEnv>()
  .use(observe)
  .use(strictQueryKeys)
  .use(localGate)
  .route("/v1", systemRoutes)
  .route("/v1", ingestRoutes)
  .route("/v1/devices", deviceRoutes)
  .route("/v1/devices", twinRoutes)
  .route("/v1/device", deviceSelfRoutes)
  .route("/v1/rooms", roomRoutes)
  .route("/v1/messages", messageRoutes)
  .route("/v1/auth/tokens", loginTokenRoutes)
  .route("/v1/auth", authRoutes)
  .route("/v1/agent", agentRoutes)
  .route("/v1/live", liveRoutes)
  .route("/v1/dead-letters", deadLetterRoutes)
  .route("/v1/series", seriesRoutes)
  // Seed 004's paths, kept as the seed's dashboards call them.
  .route("/api/v1/energy", energyRoutes)
  .route("/api/monitoring", alertRoutes)
  .route("/api/automations", automationRoutes)
  .route("/api/dashboard", dashboardRoutes)
  .route("/v1/ai", aiRoutes)
  .route("/mqtt", mqttRoutes)
  .route("/metrics", metricsRoutes)
  .route("/v1/local", localRoutes)
  .get("/", (c) => c.json({ name: "edgemesh", health: "/v1/health", topology: "/v1/topology" }))
  .notFound((c) => errorResponse(new ApiError("not_found", `no route ${c.req.method} ${new URL(c.req.url).pathname}`)))
  .onError(onError);

export default {
  // Each entry meters the bindings once (shared/billing.ts): billable operations are counted where they happen.
  fetch(request, env, ctx) {
    setLogLevel(env.LOG_LEVEL);
    countBillable("worker_invocations");
    return app.fetch(request, meterEnv(env), ctx);
  },
  queue: (batch, env) => {
    setLogLevel(env.LOG_LEVEL);
    return meterQueueBatch(batch, (metered) => handleQueue(metered, meterEnv(env)));
  },
  /** Housekeeping on the crons of wrangler.toml: history past its retention, series rollups and retention; the system monitor. */
  async scheduled(controller, rawEnv) {
    setLogLevel(rawEnv.LOG_LEVEL);
    countBillable("worker_invocations");
    const env = meterEnv(rawEnv);
    // The system alerts' monitor has a cron of its own (every minute).
    if (controller.cron === SYSTEM_CRON) {
      await checkSystem(env);
      return;
    }
    const days = readConfig(env).MESSAGE_HISTORY_DAYS;
    // Each job on its own: a database outage must not keep the other from running.
    const [history, series] = await Promise.allSettled([pruneHistory(env, new Date(Date.now() - days * 86_400_000)), maintainSeries(env)]);
    if (series.status === "fulfilled") log("info", "series maintenance", { ...series.value });
    const failed = [history, series].flatMap((r) => (r.status === "rejected" ? [String(r.reason)] : []));
    if (failed.length > 0) throw new Error(`housekeeping failed: ${failed.join("; ")}`);
  },
} satisfies ExportedHandler<Env>;
