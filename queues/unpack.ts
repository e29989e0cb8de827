/**
 * Opens packs (`QueuePack`, shared/schemas/message.ts) into one message per member, so that the
 * consumer handles, acknowledges and dead-letters each member on its own. The queue message of a
 * pack is acknowledged once every member is; if any member asks for a retry, the whole pack is
 * retried (the members that succeeded are taken again, which every sink does once: idempotent on
 * the message id), with the longest delay asked for.
 *
 * A minimal stand-in for the consumer side of the lean pipeline (issue 13, docs/topology.md
 * "Packs"), where failed members are re-sent alone as a smaller pack instead.
 */
export function unpack(messages: readonly Message<unknown>[]): Message<unknown>[] {
  const out: Message<unknown>[] = [];
  for (const msg of messages) {
    const members = packMembers(msg.body);
    if (!members) {
      out.push(msg);
      continue;
    }
    let open = members.length;
    let retry = false;
    let delaySeconds = 0;
    const settle = () => {
      if (--open > 0) return;
      if (retry) msg.retry(delaySeconds > 0 ? { delaySeconds } : undefined);
      else msg.ack();
    };
    members.forEach((body, index) => {
      let settled = false;
      const once = (f: () => void) => () => {
        if (settled) return;
        settled = true;
        f();
        settle();
      };
      out.push({
        id: `${msg.id}:${index}`,
        timestamp: msg.timestamp,
        body,
        attempts: msg.attempts,
        ack: once(() => undefined),
        retry: (options?: QueueRetryOptions) =>
          once(() => {
            retry = true;
            delaySeconds = Math.max(delaySeconds, options?.delaySeconds ?? 0);
          })(),
      });
    });
  }
  return out;
}

function packMembers(body: unknown): unknown[] | undefined {
  if (typeof body !== "object" || body === null || !("pack" in body) || body.pack !== 1) return undefined;
  const messages = (body as { messages?: unknown }).messages;
  return Array.isArray(messages) && messages.length > 0 ? messages : undefined;
}
