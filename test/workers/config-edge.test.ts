/**
 * The edge's pack window and outbox ring settings (docs/configuration.md): LIVE_PACK_MS and
 * TWIN_OUTBOX_SLOTS are checked like every var (a bad value names itself), and the live window
 * reaches the live queues only.
 */
import { describe, expect, it } from "vitest";
import { LIVE_PACK_MS_DEFAULT, packWindow } from "../../shared/bus/topology";
import { readConfig } from "../../shared/config";
import { ConfigError } from "../../shared/config-error";

describe("LIVE_PACK_MS and TWIN_OUTBOX_SLOTS", () => {
  it("default to 250 ms and 8,192 slots", () => {
    const config = readConfig({});
    expect(config.LIVE_PACK_MS).toBe(250);
    expect(LIVE_PACK_MS_DEFAULT).toBe(250);
    expect(config.TWIN_OUTBOX_SLOTS).toBe(8192);
    expect(readConfig({ LIVE_PACK_MS: "2000", TWIN_OUTBOX_SLOTS: "64" })).toMatchObject({ LIVE_PACK_MS: 2000, TWIN_OUTBOX_SLOTS: 64 });
  });

  for (const [name, value] of [
    ["LIVE_PACK_MS", "5001"],
    ["LIVE_PACK_MS", "-1"],
    ["LIVE_PACK_MS", "fast"],
    ["TWIN_OUTBOX_SLOTS", "4"],
  ] as const) {
    it(`refuses ${name} = ${value}, naming it`, () => {
      expect(() => readConfig({ [name]: value })).toThrow(ConfigError);
      expect(() => readConfig({ [name]: value })).toThrow(name);
    });
  }

  it("the live window applies to the live queues, not to the archive's", () => {
    expect(packWindow("sensors.energy", 30_000, 900)).toEqual({ windowMs: 900, maxMessages: 100 });
    expect(packWindow("sensors.energy")?.windowMs).toBe(250);
    expect(packWindow("archive.metrics", 30_000, 900)?.windowMs).toBe(30_000);
  });
});
