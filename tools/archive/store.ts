/**
 * The archive bucket over the S3 API (R2's, or any S3-compatible store): the hour manifests of a
 * range, and the messages of one object. Layout and formats come from shared/archive.ts, the
 * code the Worker writes with.
 */
import { GetObjectCommand, ListObjectsV2Command, S3Client, S3ServiceException } from "@aws-sdk/client-s3";
import { gunzip, manifestKey, manifestMonthPrefix, parseManifestKey, parseNdjson } from "../../shared/archive.ts";
import { type ArchiveKind, HourManifest } from "../../shared/schemas/archive.ts";
import { Envelope } from "../../shared/schemas/message.ts";
import { CliError } from "./errors.ts";
import { hoursIn, type TimeRange } from "./range.ts";

export interface StoreOptions {
  endpoint: string;
  bucket: string;
  region: string;
  accessKeyId?: string;
  secretAccessKey?: string;
}

export interface ObjectMessages {
  messages: Envelope[];
  /** Lines that were not JSON or not an envelope, by line number. */
  invalid: { line: number; error: string }[];
}

const decoder = new TextDecoder();

function describe(error: unknown): string {
  if (error instanceof S3ServiceException)
    return `${error.name}${error.$metadata.httpStatusCode ? ` (${error.$metadata.httpStatusCode})` : ""}: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}

/** Runs `work` over `items`, `limit` at a time, keeping the order of the results. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < items.length; i = next++) results[i] = await work(items[i] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

export class ArchiveStore {
  readonly bucket: string;
  readonly endpoint: string;
  #client: S3Client;

  constructor(options: StoreOptions) {
    this.bucket = options.bucket;
    this.endpoint = options.endpoint;
    this.#client = new S3Client({
      endpoint: options.endpoint,
      region: options.region,
      // Path-style addressing works on R2 and on every S3-compatible server, addressed by IP or not.
      forcePathStyle: true,
      ...(options.accessKeyId && options.secretAccessKey
        ? { credentials: { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey } }
        : {}),
    });
  }

  close(): void {
    this.#client.destroy();
  }

  /** The manifests that exist for the kind within the range: one LIST per month, not per hour. */
  async manifestKeys(kind: ArchiveKind, range: TimeRange): Promise<string[]> {
    const hours = hoursIn(range);
    const wanted = new Set(hours);
    const prefixes = [...new Set(hours.map((h) => manifestMonthPrefix(kind, h)))];
    const keys: string[] = [];
    for (const prefix of prefixes) {
      let token: string | undefined;
      do {
        const page = await this.#send(
          () => this.#client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token })),
          `listing ${prefix}`,
        );
        for (const object of page.Contents ?? []) {
          const parsed = object.Key ? parseManifestKey(object.Key) : undefined;
          if (parsed && parsed.kind === kind && wanted.has(parsed.hour)) keys.push(manifestKey(kind, parsed.hour));
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
    }
    return keys.sort();
  }

  async manifest(key: string): Promise<HourManifest> {
    const text = decoder.decode(await this.#bytes(key));
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new CliError(`${key} is not JSON`);
    }
    const parsed = HourManifest.safeParse(value);
    if (!parsed.success) throw new CliError(`${key} is not a manifest: ${parsed.error.issues[0]?.message ?? "invalid"}`);
    return parsed.data;
  }

  /** An object's messages: gunzipped, one envelope a line, each checked against the message contract. */
  async messages(key: string): Promise<ObjectMessages> {
    const bytes = await this.#bytes(key);
    // A proxy that honoured a Content-Encoding may already have inflated it: gzip starts 1f 8b.
    const raw = bytes[0] === 0x1f && bytes[1] === 0x8b ? await gunzip(bytes) : bytes;
    const out: ObjectMessages = { messages: [], invalid: [] };
    for (const line of parseNdjson(decoder.decode(raw))) {
      if (line.error !== undefined) {
        out.invalid.push({ line: line.line, error: line.error });
        continue;
      }
      const parsed = Envelope.safeParse(line.value);
      if (parsed.success) out.messages.push(parsed.data);
      else out.invalid.push({ line: line.line, error: parsed.error.issues[0]?.message ?? "not an envelope" });
    }
    return out;
  }

  async #bytes(key: string): Promise<Uint8Array> {
    const answer = await this.#send(() => this.#client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key })), `reading ${key}`);
    if (!answer.Body) throw new CliError(`${key} has no body`);
    return answer.Body.transformToByteArray();
  }

  async #send<T>(call: () => Promise<T>, what: string): Promise<T> {
    try {
      return await call();
    } catch (error) {
      if (error instanceof S3ServiceException && error.name === "NoSuchBucket") {
        throw new CliError(`no bucket "${this.bucket}" at ${this.endpoint} (--bucket)`, undefined, { cause: error });
      }
      throw new CliError(`${what} from ${this.endpoint}: ${describe(error)}`, undefined, { cause: error });
    }
  }
}
