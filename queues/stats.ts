/** Per-queue counters for GET /v1/topology, one upsert per consumed batch (never per message). */
export interface QueueCounts {
  delivered: number;
  retried: number;
  dead_lettered: number;
}

export async function recordQueueStats(env: Env, queue: string, counts: QueueCounts): Promise<void> {
  try {
    await env.DB.prepare(
      `INSERT INTO queue_stats (queue, delivered, retried, dead_lettered, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
       ON CONFLICT (queue) DO UPDATE SET delivered = delivered + ?2, retried = retried + ?3,
         dead_lettered = dead_lettered + ?4, updated_at = ?5`,
    )
      .bind(queue, counts.delivered, counts.retried, counts.dead_lettered, new Date().toISOString())
      .run();
  } catch (error) {
    // Counters are for people watching; losing one update must never fail the batch.
    console.warn(JSON.stringify({ level: "warn", msg: "queue stats not recorded", queue, error: String(error) }));
  }
}

export async function readQueueStats(env: Env): Promise<Map<string, QueueCounts>> {
  const { results } = await env.DB.prepare("SELECT queue, delivered, retried, dead_lettered FROM queue_stats").all<
    QueueCounts & { queue: string }
  >();
  return new Map(results.map((r) => [r.queue, { delivered: r.delivered, retried: r.retried, dead_lettered: r.dead_lettered }]));
}
