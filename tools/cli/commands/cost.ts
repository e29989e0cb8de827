/**
 * edgemesh cost: the estimated monthly Cloudflare bill at the current rate, from GET /metrics's
 * billable-operation counters and the dated price table (shared/billing-prices.ts; docs/cost.md).
 * Needs the admin token (or an admin access token), as GET /metrics does.
 */
import { type CostEstimate, estimateBetween, estimateSinceStart, parseSamples } from "../../../shared/billing-estimate.ts";
import { PRICES_AS_OF } from "../../../shared/billing-prices.ts";
import { type CommandSpec, int } from "../command.ts";
import { CliError, EXIT } from "../errors.ts";
import { fields, rowsTable } from "../output.ts";

const usd = (n: number) => `$${n.toFixed(2)}`;
const count = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : n.toFixed(0));

function text(e: CostEstimate, how: string): string {
  const head = fields([
    ["rate", how],
    ["messages", `${count(e.messages)} accepted → ${count(e.messages_per_month)} a month`],
    ["usage", `${usd(e.bill.monthly_usd)} a month beyond Workers Paid's included quotas`],
    ["plan", `${usd(e.bill.base_usd)} a month (Workers Paid subscription, apart)`],
    ["prices", `as of ${PRICES_AS_OF} (docs/cost.md)`],
  ]);
  const lines = rowsTable(e.bill.lines, [
    ["line", "line"],
    ["a month", (l) => count(l.quantity)],
    ["included", (l) => count(l.included)],
    ["usd", (l) => usd(l.usd)],
  ]);
  return `${head}\n\n${lines}`;
}

export const cost: CommandSpec = {
  summary: "the estimated monthly Cloudflare bill at the current rate (from /metrics)",
  options: {
    window: {
      type: "string",
      value: "SECONDS",
      help: "measure the rate over this many seconds (two scrapes) instead of since the counters started",
    },
  },
  notes:
    "The counters are flushed every METRICS_FLUSH_SECONDS (60 by default): a --window shorter than that can read 0.\n" +
    "Not in the estimate: Workers CPU time and Durable Object duration (docs/cost.md says why).",
  async run(ctx) {
    const window = int(ctx.values, "window", 1, 86_400);
    const scrape = async () => parseSamples(await ctx.client.request<string>("GET", "/metrics"));
    let estimate: CostEstimate | undefined;
    let how: string;
    if (window !== undefined) {
      const before = await scrape();
      await new Promise((r) => setTimeout(r, window * 1000));
      estimate = estimateBetween(before, await scrape(), window);
      how = `over the last ${window} s`;
    } else {
      estimate = estimateSinceStart(await scrape());
      how = `average since the counters started (${estimate ? `${count(estimate.window_seconds)} s ago` : "never"})`;
    }
    if (!estimate)
      throw new CliError("the edge has counted no billable operation yet (edgemesh_billable_ops_total is empty)", EXIT.failure);
    return { data: { ...estimate, prices_as_of: PRICES_AS_OF }, text: text(estimate, how) };
  },
};
