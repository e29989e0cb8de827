/**
 * The benchmarks' reference: a bare Worker that answers every request with 202 and does nothing
 * else. Measured in the same run as edgemesh, it shows what `wrangler dev` + workerd + HTTP cost
 * on this machine before any edgemesh code runs.
 */
export default {
  fetch(): Response {
    return new Response('{"accepted":1}', { status: 202, headers: { "content-type": "application/json" } });
  },
};
