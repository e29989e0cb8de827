/** The device registry API (admin): create, list and filter, read, change, rotate, delete. */
import { Hono } from "hono";
import { z } from "zod";
import { DeviceCreate, DevicePatch, Slug } from "../../shared/schemas/device";
import { DeviceId } from "../../shared/schemas/message";
import { ApiError } from "../errors";
import { type AppEnv, requireRole } from "../middleware/auth";
import { createDevice, deleteDevice, getDevice, listDevices, patchDevice, rotateToken, twin } from "../registry";
import { deviceIdParam, jsonBody, parseWith, validate } from "../validate";

const ListQuery = z.strictObject({
  type: Slug.optional(),
  room: Slug.optional(),
  kind: z.enum(["device", "service"]).optional(),
  class: z.enum(["mains", "battery"]).optional(),
  availability: z.enum(["online", "stale", "offline"]).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  after: DeviceId.optional(),
});

const META_KEY = /^[A-Za-z0-9_-]{1,64}$/;

export const deviceRoutes = new Hono<AppEnv>()
  .post("/", requireRole("admin"), async (c) => {
    const input = parseWith(DeviceCreate, await jsonBody(c));
    const { device, token } = await createDevice(c.env, input);
    c.header("location", `/v1/devices/${device.id}`);
    return c.json({ device, token, note: "the token is shown once; store it on the device now" }, 201);
  })
  .get("/", requireRole("viewer"), async (c) => {
    const url = new URL(c.req.url);
    const metadata: [string, string][] = [];
    const plain: Record<string, string> = {};
    for (const [key, value] of url.searchParams) {
      if (key.startsWith("meta.")) {
        const metaKey = key.slice(5);
        if (!META_KEY.test(metaKey)) throw ApiError.field("invalid_query", key, "metadata keys are 1-64 of A-Z a-z 0-9 _ -");
        metadata.push([metaKey, value]);
      } else plain[key] = value;
    }
    const query = parseWith(ListQuery, plain, "invalid_query", "query");
    return c.json(await listDevices(c.env, { ...query, metadata }));
  })
  .get("/:id", requireRole("viewer"), async (c) => {
    const device = await getDevice(c.env, deviceIdParam(c.req.param("id")));
    // One device: its twin's exact last_seen and availability (lists read the registry's copy, under 50 s behind).
    const view = await twin(c.env, device.id)
      .twin()
      .catch(() => undefined);
    return c.json({ device: view ? { ...device, last_seen: view.last_seen, availability: view.availability.status } : device });
  })
  .patch("/:id", requireRole("admin"), async (c) => {
    const id = deviceIdParam(c.req.param("id"));
    const patch = parseWith(DevicePatch, await jsonBody(c));
    return c.json({ device: await patchDevice(c.env, id, patch) });
  })
  .delete("/:id", requireRole("admin"), async (c) => {
    await deleteDevice(c.env, deviceIdParam(c.req.param("id")));
    return c.body(null, 204);
  })
  .post("/:id/token", requireRole("admin"), async (c) => {
    const { device, token } = await rotateToken(c.env, deviceIdParam(c.req.param("id")));
    return c.json({ device, token, note: "the old token no longer works; the new one is shown once" }, 200);
  })
  .get(
    "/:id/errors",
    requireRole("viewer"),
    validate("query", z.strictObject({ limit: z.coerce.number().int().min(1).max(1000).default(50) })),
    async (c) => {
      const id = deviceIdParam(c.req.param("id"));
      await getDevice(c.env, id);
      return c.json({ device: id, errors: await twin(c.env, id).errors(c.req.valid("query").limit) });
    },
  );
