/** zod validation of request parts, answering with the project's own error body. */
import { zValidator } from "@hono/zod-validator";
import type { ValidationTargets } from "hono";
import type { z } from "zod";
import { type Issue, toIssues } from "../shared/error-codes";
import { ApiError } from "./errors";

/** zod reports unknown keys of a strict object as one issue of the object; we name each key. */
export function issuesOf(issues: readonly z.core.$ZodIssue[]): Issue[] {
  return issues.flatMap((issue) =>
    issue.code === "unrecognized_keys"
      ? issue.keys.map((key) => ({ path: [...issue.path.map(String), key].join("."), message: "is not recognized" }))
      : toIssues([issue]),
  );
}

export function validate<T extends z.ZodType, Target extends keyof ValidationTargets>(target: Target, schema: T) {
  return zValidator(target, schema, (result) => {
    if (!result.success) {
      const issues = issuesOf(result.error.issues);
      const code = target === "query" ? "invalid_query" : "invalid_payload";
      throw new ApiError(code, issues.map((i) => `${i.path || target}: ${i.message}`).join("; "), { issues });
    }
  });
}

/** Parses a JSON body for a zod-validated route, answering 415/400 with our codes. */
export async function jsonBody(request: Request): Promise<unknown> {
  const type = (request.headers.get("content-type") ?? "").split(";")[0]?.trim().toLowerCase();
  if (type !== "application/json") throw new ApiError("unsupported_media_type", "send application/json");
  try {
    return await request.json();
  } catch (error) {
    throw new ApiError("invalid_json", `the body is not valid JSON: ${(error as Error).message}`);
  }
}
