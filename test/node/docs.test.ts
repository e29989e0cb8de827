/** Docs that state facts the code owns must agree with the code. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { unstable_readConfig } from "wrangler";
import { AWS_IOT_PRICES, CLOUDFLARE_PRICES, PRICES_AS_OF, WORKERS_PAID_BASE_USD } from "../../shared/billing-prices.ts";
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

  it("docs/cost.md shows the price table the code prices with, and its date", () => {
    const doc = read("docs/cost.md");
    expect(doc).toContain(`## The price table (read ${PRICES_AS_OF})`);
    expect(doc).toContain(`$${WORKERS_PAID_BASE_USD.toFixed(2)} a month`);
    const usd = (n: number) => `$${n < 0.01 ? n.toFixed(3) : n.toFixed(2)} / M`;
    for (const price of Object.values(CLOUDFLARE_PRICES)) expect(doc, price.line).toContain(usd(price.usdPerMillion));
    expect(doc).toContain(`$${AWS_IOT_PRICES.messagesUsdPerMillion.toFixed(2)} / M messages`);
    expect(doc).toContain(`$${AWS_IOT_PRICES.connectionMinutesUsdPerMillion.toFixed(2)} / M connection-minutes`);
    expect(doc).toContain(`$${AWS_IOT_PRICES.rulesUsdPerMillion.toFixed(2)} / M each`);
  });
});
