/** Requests about twins, commands, presence and rooms: zod schemas, the only source of their types. */
import { z } from "zod";
import { Slug } from "./device";
import { Metadata } from "./message";

const JsonObject = z.record(z.string(), z.json());

/** A merge patch for a twin document: objects merge per key, arrays replace, null deletes. */
export const DocumentPatch = JsonObject.refine((doc) => Object.keys(doc).length > 0, { message: "the patch is empty" });
export type DocumentPatch = z.infer<typeof DocumentPatch>;

export const DesiredPatch = z.strictObject({ desired: DocumentPatch });
export const ReportedPatch = z.strictObject({ reported: DocumentPatch });

export const CommandRequest = z.strictObject({
  command: z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, { message: "command must be a lowercase word (a-z, 0-9, _)" }),
  parameters: z.record(z.string(), z.json()).default({}),
  /** How long the command may wait for an offline device. */
  ttl_s: z
    .int()
    .min(1)
    .max(30 * 86_400)
    .default(300),
  /** Hold the answer up to this long for the device's result. */
  wait_s: z.int().min(0).max(30).default(0),
  correlation_id: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/)
    .optional(),
});
export type CommandRequest = z.infer<typeof CommandRequest>;

export const CommandResultRequest = z.strictObject({
  status: z.enum(["succeeded", "failed"]),
  result: z.json().optional(),
  error: z.string().max(1024).optional(),
});

export const PresenceRequest = z.strictObject({
  status: z.enum(["online", "offline"]),
  /** `last_will` when a broker or gateway reports the device's will. */
  reason: z.enum(["connect", "disconnect", "last_will", "shutdown", "restart"]).optional(),
});

export const RoomCreate = z.strictObject({
  id: Slug,
  name: z.string().min(1).max(128).optional(),
  metadata: Metadata.default({}),
});
export type RoomCreate = z.infer<typeof RoomCreate>;
