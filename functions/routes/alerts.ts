/**
 * Seed 003's monitoring API: alert rules (create, list, get, replace, patch, delete) and the
 * alerts they raise (list, get, acknowledge). docs/alerts.md.
 */
import { Hono } from "hono";
import { z } from "zod";
import { alertStub } from "../../durable-objects/stubs";
import { newMessageId } from "../../shared/ids";
import { deleteRule, getAlert, getRule, insertRule, listAlerts, listRules, replaceRule } from "../../shared/repos/alerts";
import { AlertAck, AlertRuleInput, AlertRulePatch, AlertStatus } from "../../shared/schemas/alerts";
import { DeviceId } from "../../shared/schemas/message";
import { ApiError } from "../errors";
import { type AppEnv, requireRole } from "../middleware/auth";
import { jsonBody, parseWith, validate } from "../validate";

const ID = /^[0-9a-f-]{36}$/;

function idParam(raw: string, what: string): string {
  if (!ID.test(raw)) throw ApiError.field("not_found", "id", `"${raw.slice(0, 80)}" is not ${what} id`);
  return raw;
}

async function ruleOr404(env: Env, id: string) {
  const rule = await getRule(env.DB, idParam(id, "an alert rule"));
  if (!rule) throw new ApiError("not_found", `no alert rule "${id}"`);
  return rule;
}

const AlertQuery = z.strictObject({
  status: AlertStatus.exclude(["pending"]).optional(),
  device: DeviceId.optional(),
  rule_id: z.string().regex(ID, { message: "must be a rule id" }).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

/** `If-Match: "3"` or `3`: the version a replacement expects. */
function versionOf(header: string | undefined): number | undefined {
  if (header === undefined) return undefined;
  const version = Number(header.replaceAll('"', "").replace(/^W\//, ""));
  if (!Number.isInteger(version) || version < 1) throw ApiError.field("invalid_payload", "if-match", "must be the rule's version");
  return version;
}

/**
 * The devices with an open alert of the rule re-read their rules now: a deleted or disabled rule
 * clears its alerts at once (an active alert with no re-notify or escalation timer has no alarm
 * that would find the rule gone).
 */
async function recheckOpenAlerts(env: Env, ruleId: string): Promise<void> {
  const { results } = await env.DB.prepare("SELECT DISTINCT device FROM alerts WHERE rule_id = ? AND status != 'cleared'")
    .bind(ruleId)
    .all<{ device: string }>();
  await Promise.all(results.map((r) => alertStub(env, r.device).recheck()));
}

async function replace(env: Env, id: string, input: AlertRuleInput, ifMatch: string | undefined) {
  const version = versionOf(ifMatch);
  const rule = await replaceRule(env.DB, id, input, new Date().toISOString(), version);
  if (rule) {
    if (!rule.enabled) await recheckOpenAlerts(env, id);
    return rule;
  }
  if (version !== undefined && (await getRule(env.DB, id)))
    throw new ApiError("precondition_failed", `alert rule "${id}" changed since version ${version}`);
  throw new ApiError("not_found", `no alert rule "${id}"`);
}

export const alertRoutes = new Hono<AppEnv>()
  .post("/alert_rules", requireRole("operator"), async (c) => {
    const input = parseWith(AlertRuleInput, await jsonBody(c));
    const rule = await insertRule(c.env.DB, newMessageId(), input, new Date().toISOString());
    c.header("location", `/api/monitoring/alert_rules/${rule.id}`);
    return c.json({ rule }, 201);
  })
  .get("/alert_rules", requireRole("viewer"), async (c) => c.json({ rules: await listRules(c.env.DB) }))
  .get("/alert_rules/:id", requireRole("viewer"), async (c) => c.json({ rule: await ruleOr404(c.env, c.req.param("id")) }))
  .put("/alert_rules/:id", requireRole("operator"), async (c) => {
    const id = idParam(c.req.param("id"), "an alert rule");
    const input = parseWith(AlertRuleInput, await jsonBody(c));
    return c.json({ rule: await replace(c.env, id, input, c.req.header("if-match")) });
  })
  .patch("/alert_rules/:id", requireRole("operator"), async (c) => {
    const current = await ruleOr404(c.env, c.req.param("id"));
    const patch = parseWith(AlertRulePatch, await jsonBody(c));
    const { id, version, created_at: _c, updated_at: _u, ...body } = current;
    // The merged rule is checked whole: a patch may not leave it inconsistent.
    const merged = parseWith(AlertRuleInput, { ...body, ...Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)) });
    return c.json({ rule: await replace(c.env, id, merged, c.req.header("if-match") ?? String(version)) });
  })
  .delete("/alert_rules/:id", requireRole("operator"), async (c) => {
    const id = idParam(c.req.param("id"), "an alert rule");
    if (!(await deleteRule(c.env.DB, id))) throw new ApiError("not_found", `no alert rule "${id}"`);
    await recheckOpenAlerts(c.env, id);
    return c.body(null, 204);
  })
  .get("/alerts", requireRole("viewer"), validate("query", AlertQuery), async (c) => {
    return c.json({ alerts: await listAlerts(c.env.DB, c.req.valid("query")) });
  })
  .get("/alerts/:id", requireRole("viewer"), async (c) => {
    const alert = await getAlert(c.env.DB, idParam(c.req.param("id"), "an alert"));
    if (!alert) throw new ApiError("not_found", `no alert "${c.req.param("id")}"`);
    return c.json({ alert });
  })
  .post("/alerts/:id/acknowledge", requireRole("operator"), async (c) => {
    const id = idParam(c.req.param("id"), "an alert");
    // The body (a note) is optional.
    if (c.req.header("content-length") !== "0" && c.req.header("content-type")) parseWith(AlertAck, await jsonBody(c));
    const stored = await getAlert(c.env.DB, id);
    if (!stored) throw new ApiError("not_found", `no alert "${id}"`);
    const alert = await alertStub(c.env, stored.device).acknowledge(stored.rule_id, id, c.get("principal").sub);
    if (!alert) throw new ApiError("conflict", `alert "${id}" is no longer active (${stored.status})`, { status: 409 });
    return c.json({ alert });
  });
