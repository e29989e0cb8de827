import { matchesPattern } from "./topics";

/** Whether `exchange:pattern` permissions allow publishing this routing key on this exchange. */
export function mayPublish(permissions: readonly string[], exchange: string, routingKey: string): boolean {
  for (const permission of permissions) {
    const colon = permission.indexOf(":");
    if (permission.slice(0, colon) === exchange && matchesPattern(permission.slice(colon + 1), routingKey)) return true;
  }
  return false;
}
