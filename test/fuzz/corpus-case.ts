/** One request of the fuzz corpus (test/fuzz/corpus/*.json) and the answer it must get. */
export interface CorpusCase {
  name: string;
  method: string;
  path: string;
  /** device: the sensor's token; bad-device: its id with a wrong secret; agent; admin; none. */
  auth: "device" | "bad-device" | "agent" | "bad-agent" | "admin" | "none";
  headers?: Record<string, string>;
  body?: string;
  /** A binary body (a gzip stream), base64: sent instead of `body`. */
  body_base64?: string;
  expect: { status: number; code?: string; path?: string };
}
