/** Rooms (seed 002's room actor): membership, live aggregates, and commands to every member. */
import { Hono } from "hono";
import { z } from "zod";
import type { Room, RoomListItem } from "../../shared/schemas/api/device";
import { Slug } from "../../shared/schemas/device";
import { CommandRequest, RoomCreate } from "../../shared/schemas/twin";
import { ApiError } from "../errors";
import { type AppEnv, requireRole } from "../middleware/auth";
import { getDevice, listDevices, patchDevice, room } from "../registry";
import { deviceIdParam, jsonBody, parseWith } from "../validate";

/** PATCH /v1/rooms/:id: a new display name (null clears it); the id stays. */
const RoomRename = z.strictObject({ name: z.string().trim().min(1).max(128).nullable() });

interface RoomRow {
  id: string;
  name: string | null;
  metadata: string;
  created_at: string;
}

function roomIdParam(raw: string): string {
  const parsed = Slug.safeParse(raw);
  if (!parsed.success) throw ApiError.field("not_found", "id", `"${raw.slice(0, 80)}" is not a room id`);
  return parsed.data;
}

async function getRoom(env: Env, id: string): Promise<Room> {
  let row = await env.DB.prepare("SELECT * FROM rooms WHERE id = ?").bind(id).first<RoomRow>();
  if (!row) {
    // A room named by devices from before rooms had rows is still a room.
    const named = await env.DB.prepare("SELECT MIN(created_at) AS created_at FROM devices WHERE room = ?")
      .bind(id)
      .first<{ created_at: string | null }>();
    if (!named?.created_at) throw new ApiError("not_found", `no room "${id}"`);
    row = { id, name: null, metadata: "{}", created_at: named.created_at };
  }
  return { id: row.id, name: row.name, metadata: JSON.parse(row.metadata) as Record<string, unknown>, created_at: row.created_at };
}

export const roomRoutes = new Hono<AppEnv>()
  .post("/", requireRole("admin"), async (c) => {
    const input = parseWith(RoomCreate, await jsonBody(c));
    const result = await c.env.DB.prepare("INSERT OR IGNORE INTO rooms (id, name, metadata, created_at) VALUES (?, ?, ?, ?)")
      .bind(input.id, input.name ?? null, JSON.stringify(input.metadata), new Date().toISOString())
      .run();
    if (result.meta.changes === 0)
      throw new ApiError("conflict", `room "${input.id}" already exists`, { issues: [{ path: "id", message: "already exists" }] });
    c.header("location", `/v1/rooms/${input.id}`);
    return c.json({ room: await getRoom(c.env, input.id) }, 201);
  })
  .get("/", requireRole("viewer"), async (c) => {
    const { results } = await c.env.DB.prepare(
      "SELECT r.*, (SELECT COUNT(*) FROM devices d WHERE d.room = r.id) AS devices FROM rooms r ORDER BY r.id LIMIT 1000",
    ).all<RoomRow & { devices: number }>();
    return c.json({
      rooms: results.map(
        (r): RoomListItem => ({
          id: r.id,
          name: r.name,
          metadata: JSON.parse(r.metadata),
          created_at: r.created_at,
          devices: r.devices,
        }),
      ),
    });
  })
  .get("/:id", requireRole("viewer"), async (c) => {
    const id = roomIdParam(c.req.param("id"));
    const info = await getRoom(c.env, id);
    const [{ devices }, aggregates] = await Promise.all([
      listDevices(c.env, { room: id, metadata: [], limit: 1000 }),
      room(c.env, id).aggregates(),
    ]);
    return c.json({ room: info, devices, aggregates });
  })
  .patch("/:id", requireRole("admin"), async (c) => {
    const id = roomIdParam(c.req.param("id"));
    const { name } = parseWith(RoomRename, await jsonBody(c.req.raw));
    const info = await getRoom(c.env, id);
    // A room only devices named gets its row now.
    await c.env.DB.prepare(
      "INSERT INTO rooms (id, name, metadata, created_at) VALUES (?, ?, '{}', ?) ON CONFLICT (id) DO UPDATE SET name = excluded.name",
    )
      .bind(id, name, info.created_at)
      .run();
    return c.json({ room: { ...info, name } });
  })
  .delete("/:id", requireRole("admin"), async (c) => {
    const id = roomIdParam(c.req.param("id"));
    await getRoom(c.env, id);
    const members = await c.env.DB.prepare("SELECT COUNT(*) AS n FROM devices WHERE room = ?").bind(id).first<{ n: number }>();
    if ((members?.n ?? 0) > 0) throw new ApiError("conflict", `room "${id}" still has ${members?.n} devices; move them first`);
    await room(c.env, id).forget();
    await c.env.DB.prepare("DELETE FROM rooms WHERE id = ?").bind(id).run();
    return c.body(null, 204);
  })
  .put("/:id/devices/:device", requireRole("admin"), async (c) => {
    const id = roomIdParam(c.req.param("id"));
    await getRoom(c.env, id);
    const device = await patchDevice(c.env, deviceIdParam(c.req.param("device")), { room: id });
    return c.json({ device });
  })
  .delete("/:id/devices/:device", requireRole("admin"), async (c) => {
    const id = roomIdParam(c.req.param("id"));
    const deviceId = deviceIdParam(c.req.param("device"));
    const device = await getDevice(c.env, deviceId);
    if (device.room !== id) throw new ApiError("not_found", `device "${deviceId}" is not in room "${id}"`);
    return c.json({ device: await patchDevice(c.env, deviceId, { room: null }) });
  })
  .post("/:id/commands", requireRole("operator"), async (c) => {
    const id = roomIdParam(c.req.param("id"));
    await getRoom(c.env, id);
    const request = parseWith(CommandRequest, await jsonBody(c));
    const outcomes = await room(c.env, id).forwardCommand(request);
    return c.json({ room: id, outcomes }, 202);
  });
