/** The one error body every error answer of the edge has (functions/errors.ts writes it; docs/errors.md). */
import { z } from "zod";
import { Issue } from "./common.ts";

export const ErrorBody = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    issues: z.array(Issue).default([]),
  }),
});
export type ErrorBody = z.infer<typeof ErrorBody>;
