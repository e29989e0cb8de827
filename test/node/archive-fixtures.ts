/**
 * Archive contents for the archive tool's tests, written to a real S3-protocol server with the
 * same code the Worker's archive consumer writes R2 with (shared/archive.ts): so the tool reads
 * exactly what production holds.
 */
import { CreateBucketCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import type { S3Server } from "../../scripts/lib/s3-server.ts";
import { buildArchiveObjects, emptyManifest, manifestKey, withEntries } from "../../shared/archive.ts";
import type { ArchiveKind, HourManifest, ManifestEntry } from "../../shared/schemas/archive.ts";
import type { Envelope } from "../../shared/schemas/message.ts";

export const BUCKET = "edgemesh-archive";

export function s3Client(server: S3Server): S3Client {
  return new S3Client({
    endpoint: server.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
  });
}

export async function createBucket(client: S3Client): Promise<void> {
  await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
}

/** The archive as the consumer writes it: one call per consumed batch, manifests merged per hour. */
export class ArchiveWriter {
  #client: S3Client;
  #manifests = new Map<string, HourManifest>();

  constructor(client: S3Client) {
    this.#client = client;
  }

  async writeBatch(kind: ArchiveKind, messages: Envelope[]): Promise<string[]> {
    const objects = await buildArchiveObjects(kind, messages);
    for (const object of objects) {
      await this.#client.send(
        new PutObjectCommand({ Bucket: BUCKET, Key: object.key, Body: object.body, ContentType: "application/gzip" }),
      );
      await this.addEntries(kind, object.hour, [object.entry]);
    }
    return objects.map((o) => o.key);
  }

  /** Adds entries to an hour's manifest as they are (a test may list an object that is not there). */
  async addEntries(kind: ArchiveKind, hour: string, entries: ManifestEntry[]): Promise<void> {
    const key = manifestKey(kind, hour);
    const next = withEntries(this.#manifests.get(key) ?? emptyManifest(kind, hour), entries);
    if (!next) return;
    this.#manifests.set(key, next);
    await this.#client.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: JSON.stringify(next), ContentType: "application/json" }),
    );
  }
}

let counter = 0;

export function event(device: string, timestamp: string, state = "on"): Envelope {
  const id = `ev-${device}-${++counter}`;
  return {
    id,
    correlation_id: id,
    source: device,
    type: "event",
    exchange: "home.events",
    routing_key: `home.hall.${device}.state_changed`,
    timestamp,
    received_at: timestamp,
    payload: { event_type: "state_changed", previous_state: "off", current_state: state },
    metadata: { transport: "https" },
    schema_version: 1,
  };
}

export function metric(device: string, timestamp: string, value: number): Envelope {
  const id = `me-${device}-${++counter}`;
  return {
    id,
    correlation_id: id,
    source: device,
    type: "metric",
    exchange: "metrics",
    routing_key: "metrics.sensors.temperature.hall",
    timestamp,
    received_at: timestamp,
    payload: { temperature: { value, unit: "°C" } },
    metadata: { transport: "https" },
    schema_version: 1,
  };
}
