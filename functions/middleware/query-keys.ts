/**
 * Rejects query parameters named after an object's prototype machinery (`__proto__`,
 * `constructor`, `prototype`, also as a part of a dotted name such as `meta.__proto__`) on every
 * route, with 400 `invalid_query` naming the parameter. Parsing a query into a plain object
 * (Hono's `c.req.query()`, `obj[key] = value`) would otherwise drop `__proto__` silently, so a
 * strict schema never sees it.
 */
import type { MiddlewareHandler } from "hono";
import { FORBIDDEN_KEYS } from "../../shared/safe-json";
import { ApiError } from "../errors";
import type { AppEnv } from "./auth";

export function forbiddenQueryKey(url: string): string | undefined {
  const query = url.indexOf("?");
  if (query === -1) return undefined;
  for (const key of new URLSearchParams(url.slice(query + 1)).keys()) {
    if (key.split(".").some((part) => FORBIDDEN_KEYS.has(part))) return key;
  }
  return undefined;
}

export const strictQueryKeys: MiddlewareHandler<AppEnv> = async (c, next) => {
  const key = forbiddenQueryKey(c.req.url);
  if (key !== undefined) throw ApiError.field("invalid_query", key, `"${key}" is not allowed as a query parameter`);
  await next();
};
