/**
 * Limits and tunables, read from the Worker's `vars` (wrangler.toml) with documented defaults
 * (docs/configuration.md). A bad value fails loudly naming the variable, rather than silently
 * falling back.
 */

import { z } from "zod";
import { ConfigError } from "./config-error";
import { DEFAULT_TOPIC_RULES, type TopicRule } from "./topics";

const int = (fallback: number, min: number, max: number) => z.coerce.number().int().min(min).max(max).default(fallback);

const ConfigSchema = z.object({
  MAX_BODY_BYTES: int(1_048_576, 1024, 100 * 1_048_576),
  MAX_MESSAGE_BYTES: int(65_536, 256, 120_000),
  MAX_BATCH_MESSAGES: int(500, 1, 10_000),
  MAX_JSON_DEPTH: int(32, 4, 256),
  MAX_JSON_BREADTH: int(10_000, 16, 1_000_000),
  DEVICE_RATE_PER_SECOND: z.coerce.number().positive().max(10_000).default(20),
  DEVICE_RATE_BURST: int(1_000, 1, 100_000),
  MAX_FUTURE_SKEW_SECONDS: int(300, 0, 86_400),
  MAX_MESSAGE_AGE_DAYS: int(7, 1, 3650),
  DEDUPE_WINDOW_HOURS: int(168, 1, 24 * 3650),
  DEVICE_ERRORS_KEPT: int(100, 1, 10_000),
  AVAILABILITY_MAINS_STALE_SECONDS: int(120, 5, 86_400),
  AVAILABILITY_MAINS_OFFLINE_SECONDS: int(600, 10, 7 * 86_400),
  AVAILABILITY_BATTERY_STALE_SECONDS: int(3600, 5, 7 * 86_400),
  AVAILABILITY_BATTERY_OFFLINE_SECONDS: int(14_400, 10, 30 * 86_400),
  RECENT_READINGS_MINUTES: int(120, 1, 7 * 24 * 60),
  RECENT_READINGS_KEPT: int(20_000, 100, 1_000_000),
  ARCHIVE_PACK_SECONDS: int(30, 0, 600),
  // The twin keeps windows up to 5 s with a timer (durable-objects/device-twin/outbox.ts).
  LIVE_PACK_MS: int(250, 0, 5_000),
  TWIN_OUTBOX_SLOTS: int(8_192, 8, 1_000_000),
  MAX_PENDING_COMMANDS: int(100, 1, 10_000),
  COMMAND_TTL_MAX_SECONDS: int(7 * 86_400, 1, 30 * 86_400),
  MESSAGE_HISTORY_DAYS: int(7, 1, 365),
  ACCESS_TOKEN_TTL_SECONDS: int(900, 60, 86_400),
  REFRESH_TOKEN_TTL_SECONDS: int(30 * 86_400, 3600, 365 * 86_400),
  ALLOWED_ORIGINS: z.string().default(""),
  LIVE_WINDOW: int(256, 8, 100_000),
  LIVE_STALL_SECONDS: int(30, 2, 3600),
  LIVE_REPLAY_KEPT: int(1000, 10, 100_000),
  SERIES_RAW_RETENTION_DAYS: int(30, 1, 3650),
  SERIES_ROLLUP_RETENTION_DAYS: int(730, 1, 36_500),
  SERIES_MAX_POINTS: int(10_000, 10, 100_000),
  SERIES_MAX_RANGE_DAYS: int(3660, 1, 36_500),
  SERIES_TIMEOUT_MS: int(3000, 100, 60_000),
  SERIES_BREAKER_FAILURES: int(5, 1, 1000),
  SERIES_BREAKER_COOLDOWN_SECONDS: int(30, 1, 3600),
  MQTT_MAX_PACKET_BYTES: int(131_072, 1024, 1_048_576),
  MQTT_RECEIVE_MAXIMUM: int(32, 1, 65_535),
  METRICS_FLUSH_SECONDS: int(60, 0, 3600),
  AI_MODEL_URL: z.union([z.literal(""), z.url({ protocol: /^https?$/ })]).default(""),
  AI_TIMEOUT_MS: int(2000, 50, 60_000),
  AI_CACHE_TTL_SECONDS: int(3600, 1, 30 * 86_400),
  AI_BREAKER_FAILURES: int(5, 1, 1000),
  AI_BREAKER_COOLDOWN_SECONDS: int(30, 1, 3600),
  AI_SUMMARY_MODEL: z.string().max(128).default(""),
  UPSTASH_REDIS_REST_URL: z.union([z.literal(""), z.url({ protocol: /^https?$/ })]).default(""),
  TOPIC_RULES: z
    .string()
    .optional()
    .transform((raw, ctx): readonly TopicRule[] => {
      if (!raw) return DEFAULT_TOPIC_RULES;
      try {
        return z
          .array(z.object({ topic: z.string().min(1), routing_key: z.string().min(1), device: z.string().optional() }))
          .parse(JSON.parse(raw));
      } catch (error) {
        ctx.addIssue({ code: "custom", message: `TOPIC_RULES must be a JSON array of {topic, routing_key, device?}: ${error}` });
        return z.NEVER;
      }
    }),
});

export type Config = z.infer<typeof ConfigSchema>;

/** A message older than the dedupe window would be accepted again if it came twice. */
const Checked = ConfigSchema.refine((c) => c.MAX_MESSAGE_AGE_DAYS * 24 <= c.DEDUPE_WINDOW_HOURS, {
  message: "MAX_MESSAGE_AGE_DAYS must not exceed DEDUPE_WINDOW_HOURS / 24: older messages could be stored twice",
  path: ["MAX_MESSAGE_AGE_DAYS"],
});

export function availabilityTimeouts(config: Config, deviceClass: "mains" | "battery") {
  return deviceClass === "battery"
    ? { staleMs: config.AVAILABILITY_BATTERY_STALE_SECONDS * 1000, offlineMs: config.AVAILABILITY_BATTERY_OFFLINE_SECONDS * 1000 }
    : { staleMs: config.AVAILABILITY_MAINS_STALE_SECONDS * 1000, offlineMs: config.AVAILABILITY_MAINS_OFFLINE_SECONDS * 1000 };
}

export { ConfigError };

/**
 * Per environment object: the Worker's and each Durable Object's `env` are different objects in
 * one isolate (the metered wrappers, shared/billing-do.ts), and a single-slot cache made them evict
 * each other, re-parsing the whole config on most twin calls (~10 % of the twin's CPU, bench/twin).
 */
const cached = new WeakMap<object, Config>();

/** Reads the configuration from the Worker's environment; parsed once per environment object. */
export function readConfig(env: object): Config {
  const hit = cached.get(env);
  if (hit) return hit;
  const result = Checked.safeParse(env);
  if (!result.success) {
    const detail = result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new ConfigError(`edgemesh configuration is invalid (check [vars] in wrangler.toml): ${detail}`);
  }
  cached.set(env, result.data);
  return result.data;
}
