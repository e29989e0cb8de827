/** The Worker: HTTP routes (Hono), the queue consumers, and the Durable Object classes. */
import { Hono } from "hono";
import { pruneHistory } from "../queues/history";
import { handleQueue } from "../queues/index";
import { readConfig } from "../shared/config";
import { ApiError, errorResponse, onError } from "./errors";
import type { AppEnv } from "./middleware/auth";
import { authRoutes } from "./routes/auth";
import { deadLetterRoutes } from "./routes/dead-letters";
import { deviceSelfRoutes } from "./routes/device-self";
import { deviceRoutes } from "./routes/devices";
import { ingestRoutes } from "./routes/ingest";
import { liveRoutes } from "./routes/live";
import { messageRoutes } from "./routes/messages";
import { roomRoutes } from "./routes/rooms";
import { systemRoutes } from "./routes/system";
import { twinRoutes } from "./routes/twins";

export { DeviceTwin } from "../durable-objects/device-twin";
export { LiveHub } from "../durable-objects/live-hub";
export { RoomActor } from "../durable-objects/room";

export const app = new Hono<AppEnv>()
  .route("/v1", systemRoutes)
  .route("/v1", ingestRoutes)
  .route("/v1/devices", deviceRoutes)
  .route("/v1/devices", twinRoutes)
  .route("/v1/device", deviceSelfRoutes)
  .route("/v1/rooms", roomRoutes)
  .route("/v1/messages", messageRoutes)
  .route("/v1/auth", authRoutes)
  .route("/v1/live", liveRoutes)
  .route("/v1/dead-letters", deadLetterRoutes)
  .get("/", (c) => c.json({ name: "edgemesh", health: "/v1/health", topology: "/v1/topology" }))
  .notFound((c) => errorResponse(new ApiError("not_found", `no route ${c.req.method} ${new URL(c.req.url).pathname}`)))
  .onError(onError);

export default {
  fetch: app.fetch,
  queue: handleQueue,
  /** Housekeeping on the cron of wrangler.toml: message history past its retention. */
  async scheduled(_controller, env) {
    const days = readConfig(env).MESSAGE_HISTORY_DAYS;
    await pruneHistory(env, new Date(Date.now() - days * 86_400_000));
  },
} satisfies ExportedHandler<Env>;
