/**
 * The labelled synthetic set for the default analysis (bench/analysis.ts, docs/ai.md): seeded, so
 * every run makes the same readings. Six metrics with different shapes and noise — a temperature
 * with a daily cycle, a humidity in half-percent steps, a power draw that wanders (AR(1)), a CO₂
 * level with occupancy bumps, a cumulative energy counter, a mains voltage in whole volts — and
 * three kinds of injected anomalies, each an event with the readings where finding it counts:
 *
 * Sizes are in σ, the noise, or in the sensor's step where that is coarser (the voltage, the counter).
 *
 * - spike: one reading 6–12 σ off (window: that reading);
 * - shift: the level steps by 8–15 σ for 40–100 readings, then back (windows: the first 3 readings
 *   after each step);
 * - drift: the level ramps by 10–20 σ over 20–40 readings, holds 40, ramps back (window: the
 *   whole episode, as a slow sensor fault is an anomaly until it is over).
 *
 * No event in the first 80 readings (the baselines are warming up); events never overlap.
 */
import { gaussian, type Random, seededRandom } from "../shared/random.ts";

export type Kind = "spike" | "shift" | "drift";

export interface Event {
  kind: Kind;
  /** Inclusive reading indexes where a detection finds this event. */
  from: number;
  to: number;
}

export interface LabelledSeries {
  metric: string;
  values: number[];
  events: Event[];
  /** For each reading, whether it lies in some event's window (flags there are not false alarms). */
  labelled: boolean[];
}

interface Shape {
  metric: string;
  /** The noise added to each reading. */
  sigma: number;
  /** The unit anomalies are sized in: the noise, or the sensor's step when that is coarser. */
  unit: number;
  /** The clean signal at reading i (5-minute readings: 288 a day). */
  base: (i: number, random: Random) => number;
  /** Quantization step of the sensor (0: none). */
  step: number;
  kinds: readonly Kind[];
}

function shapes(): Shape[] {
  let power = 0;
  let energy = 1200;
  return [
    {
      metric: "temperature",
      sigma: 0.3,
      unit: 0.3,
      step: 0,
      kinds: ["spike", "shift", "drift"],
      base: (i) => 20 + 3 * Math.sin((2 * Math.PI * i) / 288),
    },
    {
      metric: "humidity",
      sigma: 1.2,
      unit: 1.2,
      step: 0.5,
      kinds: ["spike", "shift", "drift"],
      base: (i) => 55 + 8 * Math.cos((2 * Math.PI * i) / 288),
    },
    {
      metric: "power",
      sigma: 25,
      unit: 25,
      step: 0,
      kinds: ["spike", "shift"],
      base: (_i, random) => {
        power = 0.97 * power + 8 * gaussian(random);
        return 800 + power;
      },
    },
    {
      metric: "co2",
      sigma: 15,
      unit: 15,
      step: 1,
      kinds: ["spike", "shift", "drift"],
      base: (i) => 600 + 250 * Math.max(0, Math.sin((2 * Math.PI * i) / 288)) ** 2,
    },
    {
      metric: "total_energy_kwh",
      sigma: 0,
      unit: 0.01,
      step: 0.01,
      kinds: ["spike"],
      // A meter's counter: 0.07 kWh per reading, give or take 0.01 (the consumption varies).
      base: (_i, random) => {
        energy += 0.07 + 0.01 * gaussian(random);
        return energy;
      },
    },
    // Mains voltage in whole volts: mostly one value, now and then the next (noise well under the step).
    { metric: "voltage", sigma: 0.3, unit: 1, step: 1, kinds: ["spike", "shift"], base: () => 230 },
  ];
}

/** One series per metric, `length` readings each, from `seed`. */
export function generateSet(seed: number, length: number): LabelledSeries[] {
  return shapes().map((shape, n) => {
    const random = seededRandom(seed * 1000 + n);
    const offsets = new Array<number>(length).fill(0);
    const events: Event[] = [];
    let i = 80;
    for (;;) {
      i += 40 + Math.floor(random() * 120);
      const kind = shape.kinds[Math.floor(random() * shape.kinds.length)] as Kind;
      const sign = random() < 0.5 ? -1 : 1;
      if (kind === "spike") {
        if (i >= length) break;
        offsets[i] = sign * shape.unit * (6 + 6 * random());
        events.push({ kind, from: i, to: i });
        i += 1;
      } else if (kind === "shift") {
        const span = 40 + Math.floor(random() * 60);
        if (i + span + 3 >= length) break;
        const size = sign * shape.unit * (8 + 7 * random());
        for (let k = i; k < i + span; k++) offsets[k] = size;
        events.push({ kind, from: i, to: i + 2 }, { kind, from: i + span, to: i + span + 2 });
        i += span + 3;
      } else {
        const ramp = 20 + Math.floor(random() * 20);
        const hold = 40;
        const end = i + 2 * ramp + hold;
        if (end >= length) break;
        const size = sign * shape.unit * (10 + 10 * random());
        for (let k = i; k < end; k++) {
          const t = k - i;
          offsets[k] = size * (t < ramp ? t / ramp : t < ramp + hold ? 1 : (end - k) / ramp);
        }
        events.push({ kind, from: i, to: end });
        i = end;
      }
    }
    const values: number[] = [];
    for (let k = 0; k < length; k++) {
      const v = shape.base(k, random) + shape.sigma * gaussian(random) + (offsets[k] as number);
      values.push(shape.step ? Math.round(v / shape.step) * shape.step : v);
    }
    const labelled = new Array<boolean>(length).fill(false);
    for (const e of events) for (let k = e.from; k <= e.to; k++) labelled[k] = true;
    return { metric: shape.metric, values, events, labelled };
  });
}
