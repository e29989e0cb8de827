/**
 * The message history's hourly digest (infra/migrations/d1/0019_message_hours.sql): the ids and
 * correlation ids each finished hour's batch rows hold, written by the hourly cron, so a lookup
 * by id reads the digests and then only the hours that hold the id (queues/history-lookup.ts).
 */

const HOUR_MS = 3_600_000;
/** An hour is digested this long after it ended: every batch row of it is written by then. */
export const DIGEST_DELAY_MS = 5 * 60_000;
/** Hours digested per cron run at most (a first run after the migration catches up over a few). */
const HOURS_PER_RUN = 48;
const IDS_PER_PART = 20_000;

const iso = (ms: number) => new Date(ms).toISOString();

/** The hour after the newest digested one, or undefined when none is. */
export async function digestedUntil(db: D1Database, notBefore: string): Promise<number | undefined> {
  const row = await db
    .prepare("SELECT max(hour) AS hour FROM message_hours WHERE hour >= ?")
    .bind(notBefore)
    .first<{ hour: string | null }>();
  return row?.hour ? Date.parse(row.hour) + HOUR_MS : undefined;
}

/**
 * Digests the finished hours not digested yet, from the retention's start (or the newest digest)
 * on, at most HOURS_PER_RUN of them; an hour without batch rows gets an empty digest, so it is
 * known as done. Returns the hours digested.
 */
export async function digestHours(db: D1Database, retentionStart: number, now = Date.now()): Promise<number> {
  const floorHour = Math.floor(retentionStart / HOUR_MS) * HOUR_MS;
  const until = await digestedUntil(db, iso(floorHour));
  let from = until;
  if (from === undefined) {
    const oldest = await db
      .prepare("SELECT min(at) AS at FROM message_batches WHERE at >= ?")
      .bind(iso(floorHour))
      .first<{ at: string | null }>();
    if (!oldest?.at) return 0;
    from = Math.floor(Date.parse(oldest.at) / HOUR_MS) * HOUR_MS;
  }
  const last = Math.floor((now - DIGEST_DELAY_MS) / HOUR_MS) * HOUR_MS - HOUR_MS;
  const hours: number[] = [];
  for (let h = from; h <= last && hours.length < HOURS_PER_RUN; h += HOUR_MS) hours.push(h);
  for (const h of hours) {
    await db.batch([
      db
        .prepare(
          `INSERT OR REPLACE INTO message_hours (hour, part, ids)
           SELECT ?1, n / ${IDS_PER_PART}, char(10) || group_concat(v, char(10)) || char(10)
           FROM (SELECT v, row_number() OVER (ORDER BY v) - 1 AS n FROM (
             SELECT m.value ->> 0 AS v FROM message_batches b, json_each(b.messages) m WHERE b.at >= ?1 AND b.at < ?2
             UNION
             SELECT m.value ->> 2 FROM message_batches b, json_each(b.messages) m WHERE b.at >= ?1 AND b.at < ?2))
           GROUP BY n / ${IDS_PER_PART}`,
        )
        .bind(iso(h), iso(h + HOUR_MS)),
      db.prepare("INSERT OR IGNORE INTO message_hours (hour, part, ids) VALUES (?1, 0, char(10))").bind(iso(h)),
    ]);
  }
  return hours.length;
}

/**
 * Where the batch rows holding `needle` (an id or correlation id) can be, from `lower` on: the
 * digested hours that list it, and everything from the first undigested hour on.
 */
export async function hoursHolding(db: D1Database, needle: string, lower: string): Promise<{ hours: number[]; undigestedFrom: string }> {
  const lowerHour = iso(Math.floor(Date.parse(lower) / HOUR_MS) * HOUR_MS);
  const [found, until] = await Promise.all([
    db
      .prepare("SELECT DISTINCT hour FROM message_hours WHERE hour >= ? AND instr(ids, char(10) || ? || char(10)) > 0")
      .bind(lowerHour, needle)
      .all<{ hour: string }>(),
    digestedUntil(db, lowerHour),
  ]);
  const undigested = until === undefined ? lower : iso(Math.max(until, Date.parse(lower)));
  return { hours: found.results.map((r) => Date.parse(r.hour)), undigestedFrom: undigested };
}

export { HOUR_MS };
