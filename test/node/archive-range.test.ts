/** The archive tool's time ranges: what `--from` and `--to` accept, and the hours a range touches. */
import { describe, expect, it } from "vitest";
import { UsageError } from "../../tools/archive/errors.ts";
import { hoursIn, parseRange, parseTime } from "../../tools/archive/range.ts";

const NOW = Date.parse("2026-11-23T14:30:00Z");

describe("archive tool ranges", () => {
  it("reads now, durations ago, dates and date-times (UTC unless zoned)", () => {
    expect(parseTime("now", NOW, "from")).toBe(NOW);
    expect(parseTime("90m", NOW, "from")).toBe(NOW - 90 * 60_000);
    expect(parseTime("24h", NOW, "from")).toBe(NOW - 86_400_000);
    expect(parseTime("7d", NOW, "from")).toBe(NOW - 7 * 86_400_000);
    expect(parseTime("2026-11-23", NOW, "from")).toBe(Date.parse("2026-11-23T00:00:00Z"));
    expect(parseTime("2026-11-23T14:00", NOW, "from")).toBe(Date.parse("2026-11-23T14:00:00Z"));
    expect(parseTime("2026-11-23T14:00:00+02:00", NOW, "from")).toBe(Date.parse("2026-11-23T12:00:00Z"));
  });

  it("refuses what is not a time, and a range that ends before it starts", () => {
    for (const bad of ["yesterday", "24", "-1h", "11/23/2026", ""]) expect(() => parseTime(bad, NOW, "from"), bad).toThrow(UsageError);
    expect(() => parseRange(undefined, undefined, NOW)).toThrow(/--from is required/);
    expect(() => parseRange("1h", "2h", NOW)).toThrow(/later than --from/);
    expect(parseRange("2h", undefined, NOW)).toEqual({ from: NOW - 7_200_000, to: NOW });
  });

  it("names every UTC hour the half-open range touches", () => {
    expect(hoursIn({ from: Date.parse("2026-11-23T12:30:00Z"), to: Date.parse("2026-11-23T14:00:00Z") })).toEqual([
      "2026-11-23T12",
      "2026-11-23T13",
    ]);
    expect(hoursIn({ from: Date.parse("2026-11-30T23:59:00Z"), to: Date.parse("2026-12-01T00:00:01Z") })).toEqual([
      "2026-11-30T23",
      "2026-12-01T00",
    ]);
  });
});
