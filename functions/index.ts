/** The Worker: HTTP routes (Hono), the queue consumers, and the Durable Object classes. */
import { Hono } from "hono";
import { handleQueue } from "../queues/index";
import { ApiError, errorResponse, onError } from "./errors";
import type { AppEnv } from "./middleware/auth";
import { deadLetterRoutes } from "./routes/dead-letters";
import { deviceRoutes } from "./routes/devices";
import { ingestRoutes } from "./routes/ingest";
import { systemRoutes } from "./routes/system";

export { DeviceTwin } from "../durable-objects/device-twin";

export const app = new Hono<AppEnv>()
  .route("/v1", systemRoutes)
  .route("/v1", ingestRoutes)
  .route("/v1/devices", deviceRoutes)
  .route("/v1/dead-letters", deadLetterRoutes)
  .get("/", (c) => c.json({ name: "edgemesh", health: "/v1/health", topology: "/v1/topology" }))
  .notFound((c) => errorResponse(new ApiError("not_found", `no route ${c.req.method} ${new URL(c.req.url).pathname}`)))
  .onError(onError);

export default {
  fetch: app.fetch,
  queue: handleQueue,
} satisfies ExportedHandler<Env>;
