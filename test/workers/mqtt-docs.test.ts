/** docs/mqtt.md's reason-code tables agree with durable-objects/mqtt/reasons.ts. */
import { describe, expect, it } from "vitest";
import doc from "../../docs/mqtt.md?raw";
import {
  CONNACK_REASONS,
  DISCONNECT_REASONS,
  PUBACK_REASONS,
  PUBLISH_REFUSAL,
  PUBREL_REASONS,
  SUBACK_REASONS,
  UNSUBACK_REASONS,
} from "../../durable-objects/mqtt/reasons";
import { REASON } from "../../shared/mqtt";

const codes = (text: string) => [...text.matchAll(/`(0x[0-9A-Fa-f]{2})(?:[ `])/g)].map((m) => Number(m[1]));
const spaced = (text: string) => [...text.matchAll(/0x[0-9A-Fa-f]{2}/g)].map((m) => Number(m[0]));

describe("docs/mqtt.md reason codes", () => {
  it("every code the per-packet table lists is in that packet's table of the spec (reasons.ts)", () => {
    const section = doc.slice(doc.indexOf("## Reason codes per packet"), doc.indexOf("## Tests and figures"));
    const tables: Record<string, ReadonlySet<number>> = {
      CONNACK: CONNACK_REASONS,
      "PUBACK / PUBREC": PUBACK_REASONS,
      PUBCOMP: PUBREL_REASONS,
      SUBACK: SUBACK_REASONS,
      UNSUBACK: UNSUBACK_REASONS,
      DISCONNECT: DISCONNECT_REASONS,
    };
    for (const [packet, table] of Object.entries(tables)) {
      const row = section.split("\n").find((line) => line.startsWith(`| ${packet} |`));
      expect(row, packet).toBeDefined();
      const listed = spaced((row as string).split("|")[2] as string);
      expect(listed.length, packet).toBeGreaterThan(0);
      for (const code of listed) expect(table.has(code), `${packet} 0x${code.toString(16)}`).toBe(true);
    }
  });

  it("the PUBLISH answers table lists exactly the codes a publish can get", () => {
    const section = doc.slice(
      doc.indexOf("| outcome | v5 PUBACK / PUBREC reason | 3.1.1 |"),
      doc.indexOf("Only codes of the PUBACK/PUBREC table"),
    );
    const listed = new Set(section.split("\n").flatMap((line) => codes(line.split("|")[2] ?? "")));
    expect([...listed].sort()).toEqual(
      [...new Set([REASON.success, REASON.noMatchingSubscribers, ...Object.values(PUBLISH_REFUSAL)])].sort(),
    );
    for (const code of listed) expect(PUBACK_REASONS.has(code)).toBe(true);
  });
});
