/** Polling until something holds, for the Node tests and benchmarks that drive a real edge. */

/**
 * Calls `check` every 200 ms until it answers something other than undefined, and returns that;
 * after `timeoutMs`, fails naming `what` (and `detail()`, e.g. the edge's recent log).
 */
export async function until<T>(
  check: () => Promise<T | undefined> | T | undefined,
  what: string,
  timeoutMs = 60_000,
  detail?: () => string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${detail ? `\n${detail()}` : ""}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
