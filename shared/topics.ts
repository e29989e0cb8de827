/**
 * Routing keys (dot-separated, AMQP style) and MQTT topics (slash-separated), their validation,
 * pattern matching, and the one mapping from MQTT topics to routing keys that the edge's MQTT
 * gateway and the LAN agent share.
 *
 * Hand-written rather than a library: AMQP topic matching has no maintained JS package, and the
 * MQTT side must share the exact validation rules with the routing-key side.
 */

export const MAX_KEY_BYTES = 255;
const encoder = new TextEncoder();

export type KeyProblem = "empty" | "too_long" | "empty_level" | "wildcard" | "nul" | "control_character" | "invalid_utf8";

function basicProblem(key: string): KeyProblem | undefined {
  if (key.length === 0) return "empty";
  if (key.includes("\u0000")) return "nul"; // [MQTT-4.7.3-2]
  // Lone surrogates cannot be encoded as UTF-8 [MQTT-1.5.4-1].
  if (!key.isWellFormed()) return "invalid_utf8";
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (/[\u0001-\u001f\u007f-\u009f]/.test(key)) return "control_character"; // [MQTT-1.5.4-2]
  if (encoder.encode(key).byteLength > MAX_KEY_BYTES) return "too_long";
  return undefined;
}

/** Why a routing key a message is published with is unacceptable, or undefined when it is fine. */
export function routingKeyProblem(key: string): KeyProblem | undefined {
  const basic = basicProblem(key);
  if (basic) return basic;
  if (/[*#+]/.test(key)) return "wildcard";
  if (key.split(".").some((level) => level.length === 0)) return "empty_level";
  return undefined;
}

/** Why a binding or permission pattern is unacceptable (`*` and `#` must fill a whole level). */
export function patternProblem(pattern: string): KeyProblem | undefined {
  const basic = basicProblem(pattern);
  if (basic) return basic;
  for (const level of pattern.split(".")) {
    if (level.length === 0) return "empty_level";
    if (level !== "*" && level !== "#" && /[*#+]/.test(level)) return "wildcard";
  }
  return undefined;
}

/** Why an MQTT topic a client publishes to is unacceptable [MQTT-3.3.2-2]. */
export function mqttTopicProblem(topic: string): KeyProblem | undefined {
  const basic = basicProblem(topic);
  if (basic) return basic;
  if (/[+#]/.test(topic)) return "wildcard";
  return undefined;
}

export const KEY_PROBLEM_MESSAGES: Record<KeyProblem, string> = {
  empty: "must not be empty",
  too_long: `must be at most ${MAX_KEY_BYTES} bytes of UTF-8`,
  empty_level: "must not have empty levels (leading, trailing or doubled separators)",
  wildcard: "must not contain wildcards (*, #, +) where a concrete name is expected",
  nul: "must not contain the NUL character",
  control_character: "must not contain control characters",
  invalid_utf8: "must be valid UTF-8 (no lone surrogates)",
};

const compiled = new Map<string, readonly string[]>();

function levels(pattern: string): readonly string[] {
  let parts = compiled.get(pattern);
  if (!parts) {
    parts = pattern.split(".");
    if (compiled.size > 10_000) compiled.clear();
    compiled.set(pattern, parts);
  }
  return parts;
}

/** AMQP topic matching: `*` matches exactly one word, `#` zero or more words. */
export function matchesPattern(pattern: string, routingKey: string): boolean {
  if (pattern === "#") return true;
  return matchLevels(levels(pattern), 0, routingKey.split("."), 0);
}

function matchLevels(p: readonly string[], pi: number, k: readonly string[], ki: number): boolean {
  for (;;) {
    if (pi === p.length) return ki === k.length;
    const level = p[pi];
    if (level === "#") {
      // Collapse consecutive '#': they mean the same as one.
      while (pi + 1 < p.length && p[pi + 1] === "#") pi++;
      if (pi + 1 === p.length) return true;
      for (let skip = ki; skip <= k.length; skip++) {
        if (matchLevels(p, pi + 1, k, skip)) return true;
      }
      return false;
    }
    if (ki === k.length) return false;
    if (level !== "*" && level !== k[ki]) return false;
    pi++;
    ki++;
  }
}

/** One rule of the MQTT topic → routing key mapping. */
export interface TopicRule {
  /** MQTT filter: `+` one level, `#` the rest (last level only). */
  readonly topic: string;
  /** Template: `{1}`, `{2}`… are the `+` captures in order, `{#}` the `#` tail joined with dots. */
  readonly routing_key: string;
  /** Template for the device id the topic belongs to, when the topic names one. */
  readonly device?: string;
}

/** Seed 004's topics, and a generic rule for `homelab/<type>/<location>`. */
export const DEFAULT_TOPIC_RULES: readonly TopicRule[] = [
  { topic: "homelab/energy/+", routing_key: "sensors.energy.{1}", device: "{1}" },
  { topic: "homelab/heatpump/#", routing_key: "sensors.heatpump.{#}" },
  { topic: "homelab/temperature/+", routing_key: "sensors.temperature.{1}" },
  { topic: "homelab/humidity/+", routing_key: "sensors.humidity.{1}" },
  { topic: "homelab/motion/+", routing_key: "sensors.motion.{1}" },
];

export interface TopicMapping {
  readonly routingKey: string;
  readonly device?: string;
  readonly rule: TopicRule;
}

/** Maps an MQTT topic to a routing key with the first rule that matches, or undefined. */
export function mapTopic(topic: string, rules: readonly TopicRule[] = DEFAULT_TOPIC_RULES): TopicMapping | undefined {
  const parts = topic.split("/");
  for (const rule of rules) {
    const captures = captureTopic(rule.topic.split("/"), parts);
    if (!captures) continue;
    const fill = (template: string) =>
      template.replace(/\{(\d+|#)\}/g, (_, ref: string) =>
        ref === "#" ? captures.tail.join(".") : (captures.single[Number(ref) - 1] ?? ""),
      );
    const routingKey = fill(rule.routing_key);
    if (routingKeyProblem(routingKey)) continue;
    return { routingKey, device: rule.device ? fill(rule.device) : undefined, rule };
  }
  return undefined;
}

function captureTopic(filter: readonly string[], topic: readonly string[]) {
  const single: string[] = [];
  for (let i = 0; i < filter.length; i++) {
    const level = filter[i];
    if (level === "#") return { single, tail: topic.slice(i) };
    if (i >= topic.length) return undefined;
    if (level === "+") single.push(topic[i] ?? "");
    else if (level !== topic[i]) return undefined;
  }
  return filter.length === topic.length ? { single, tail: [] as string[] } : undefined;
}

// ── MQTT topic filters ─────────────────────────────────────────────────────────────────────

/** Why a topic filter is malformed [MQTT-4.7.1-1..3], or undefined when it is well formed. */
export function filterProblem(filter: string): string | undefined {
  if (filter === "") return "is empty";
  if (filter.includes("\u0000") || filter.includes("\uFFFD")) return "holds NUL or invalid UTF-8";
  const levels = filter.split("/");
  for (const [i, level] of levels.entries()) {
    // [MQTT-4.7.1-2] `#` is a whole level and the last one; [MQTT-4.7.1-3] `+` fills a whole level.
    if (level.includes("#") && (level !== "#" || i !== levels.length - 1)) return "uses # other than as the whole last level";
    if (level.includes("+") && level !== "+") return "uses + other than as a whole level";
  }
  return undefined;
}

/** Whether a topic name matches a (well-formed) filter, level by level [MQTT-4.7]. */
export function filterMatches(filter: string, topic: string): boolean {
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true;
    if (i >= t.length) return false;
    if (f[i] !== "+" && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}
