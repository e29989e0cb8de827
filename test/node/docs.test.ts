/** Docs that state facts the code owns must agree with the code. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { unstable_readConfig } from "wrangler";
import { ERROR_CODES } from "../../shared/error-codes.ts";

const root = join(import.meta.dirname, "../..");
const read = (path: string) => readFileSync(join(root, path), "utf8");

describe("docs", () => {
  it("docs/errors.md lists every error code with its status, and no other", () => {
    const rows = [...read("docs/errors.md").matchAll(/^\| `([a-z_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1], Number(m[2])]);
    expect(rows).toEqual(Object.entries(ERROR_CODES).map(([code, { status }]) => [code, status]));
  });

  it("docs/configuration.md documents every [var] with its default from wrangler.toml", () => {
    const doc = read("docs/configuration.md");
    const config = unstable_readConfig({ config: join(root, "wrangler.toml") });
    for (const [name, value] of Object.entries(config.vars ?? {})) {
      expect(doc, name).toMatch(new RegExp(`\\| \`${name}\` \\| \`${value}\` \\|`));
    }
  });
});
