/** edgemesh dead-letters: list what failed, and replay it (by id, or every pending one with a progress bar). */
import type { DeadLetterList, ReplayAnswer } from "../../../shared/schemas/api/dead-letter.ts";
import { progressBar } from "../../archive/progress.ts";
import { type CommandSpec, int, str } from "../command.ts";
import { EXIT, UsageError } from "../errors.ts";
import { rowsTable } from "../output.ts";

export const deadLetters: Record<string, CommandSpec> = {
  list: {
    summary: "dead letters, newest first, with the queue, routing key and error",
    options: {
      status: { type: "string", value: "pending|replayed|all", help: "default pending" },
      queue: { type: "string", value: "QUEUE", help: "only this queue ((unroutable) for messages no binding took)" },
      source: { type: "string", value: "DEVICE", help: "only from this device" },
      limit: { type: "string", value: "N", help: "at most N (default 100)" },
    },
    async run(ctx) {
      const answer = await ctx.client.get<DeadLetterList>("/v1/dead-letters", {
        status: str(ctx.values, "status"),
        queue: str(ctx.values, "queue"),
        source: str(ctx.values, "source"),
        limit: int(ctx.values, "limit", 1, 1000),
      });
      const text = `${rowsTable(
        answer.dead_letters,
        [
          ["ID", "id"],
          ["FAILED AT", "failed_at"],
          ["QUEUE", "queue"],
          ["ROUTING KEY", "routing_key"],
          ["ERROR", (d) => `${d.error.code}: ${d.error.message}`.slice(0, 80)],
          ["ATTEMPTS", "attempts"],
          ["STATUS", "status"],
        ],
        "(no dead letters)",
      )}\n${answer.total} in all`;
      return { data: answer, text };
    },
  },
  replay: {
    summary: "send dead letters back to their queue (or exchange, when unroutable)",
    args: ["[ids...]"],
    options: {
      all: { type: "boolean", help: "every pending dead letter (1,000 a call, with a progress bar)" },
      queue: { type: "string", value: "QUEUE", help: "with --all: only this queue's" },
    },
    notes: "Exit codes: 0 every one replayed; 1 some failed or could not be replayed (the summary lists them).",
    async run(ctx) {
      const all = ctx.values.all === true;
      const queue = str(ctx.values, "queue");
      if (all === ctx.args.length > 0) throw new UsageError("give dead-letter ids or --all, not both nor neither");
      if (queue && !all) throw new UsageError("--queue goes with --all");
      const total: ReplayAnswer = { replayed: 0, replayed_ids: [], still_unroutable: [], not_replayable: [], failed: [], pending: 0 };
      const add = (a: ReplayAnswer) => {
        total.replayed += a.replayed;
        total.replayed_ids.push(...a.replayed_ids);
        total.still_unroutable.push(...a.still_unroutable);
        total.not_replayable.push(...a.not_replayable);
        total.failed.push(...a.failed);
        total.pending = a.pending;
      };
      if (!all) {
        const ids = ctx.args.map((raw) => {
          const id = Number(raw);
          if (!Number.isInteger(id) || id < 1) throw new UsageError(`"${raw}" is not a dead-letter id`);
          return id;
        });
        for (let i = 0; i < ids.length; i += 1000)
          add(await ctx.client.post<ReplayAnswer>("/v1/dead-letters/replay", { ids: ids.slice(i, i + 1000) }));
      } else {
        const { total: pending } = await ctx.client.get<{ total: number }>("/v1/dead-letters", { status: "pending", queue, limit: 1 });
        const bar = progressBar("replay", "dead letters", ctx.progress);
        bar.start(pending);
        try {
          // Rows that cannot be replayed stay pending: stop when a call replays nothing new.
          for (;;) {
            const answer = await ctx.client.post<ReplayAnswer>("/v1/dead-letters/replay", { all: true, ...(queue && { queue }) });
            add(answer);
            bar.increment(answer.replayed + answer.failed.length);
            if (answer.replayed === 0 || answer.pending === 0 || answer.failed.length > 0) break;
          }
        } finally {
          bar.stop();
        }
      }
      const problems = total.failed.length + total.still_unroutable.length + total.not_replayable.length;
      const text = [
        `Replayed ${total.replayed}; ${total.pending} still pending.`,
        total.failed.length ? `Failed (try again): ${total.failed.join(", ")}` : "",
        total.still_unroutable.length ? `Still unroutable (no binding takes them): ${total.still_unroutable.join(", ")}` : "",
        total.not_replayable.length ? `Not replayable (no valid message kept): ${total.not_replayable.join(", ")}` : "",
      ]
        .filter(Boolean)
        .join("\n");
      return { data: total, text, exitCode: problems > 0 ? EXIT.failure : EXIT.ok };
    },
  },
};
