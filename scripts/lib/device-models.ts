/**
 * The simulator's device models: what each kind of demo device reports over time — a diurnal
 * temperature curve (sometimes in °F), a humidity random walk with the odd shower, bursts of
 * motion, and seed 004's energy meter whose counter grows with the power it draws.
 */
import { gaussian, type Random } from "../../shared/random.ts";

export interface Outgoing {
  path: "/v1/telemetry" | "/v1/events";
  body: Record<string, unknown>;
}

export interface DeviceModel {
  /** The messages the device sends at `now` (a telemetry reading, sometimes an event). */
  next(now: number): Outgoing[];
  /** The latest reading in a few characters, for the summary line. */
  describe(): string;
}

const round = (value: number, digits: number) => Number(value.toFixed(digits));
const clamp = (value: number, min: number, max: number) => Math.min(max, Math.max(min, value));
const iso = (now: number) => new Date(now).toISOString();

function hourOfDay(now: number): number {
  const d = new Date(now);
  return d.getHours() + d.getMinutes() / 60 + d.getSeconds() / 3600;
}

/** Indoor temperature: 21 °C ± 2.5 over the day (warmest mid-afternoon), with sensor noise; every third reading in °F. */
export function temperatureModel(random: Random): DeviceModel {
  let battery = 78 + random() * 20;
  let count = 0;
  let last = "";
  return {
    next(now) {
      const celsius = 21 + 2.5 * Math.sin((2 * Math.PI * (hourOfDay(now) - 9)) / 24) + gaussian(random) * 0.15;
      const fahrenheit = count % 3 === 2;
      count++;
      battery = Math.max(5, battery - 0.002);
      const temperature = fahrenheit ? { value: round((celsius * 9) / 5 + 32, 1), unit: "°F" } : { value: round(celsius, 1), unit: "°C" };
      last = `${temperature.value} ${temperature.unit}`;
      return [
        {
          path: "/v1/telemetry",
          body: { timestamp: iso(now), payload: { temperature, battery: { value: Math.round(battery), unit: "%" } } },
        },
      ];
    },
    describe: () => last,
  };
}

/** Bathroom humidity: a random walk around 55 %RH, pulled back to it, with the odd shower. */
export function humidityModel(random: Random): DeviceModel {
  let humidity = 50 + random() * 10;
  let battery = 60 + random() * 35;
  return {
    next(now) {
      humidity += 0.08 * (55 - humidity) + gaussian(random) * 0.8;
      if (random() < 0.02) humidity += 15 + random() * 10; // someone showers
      humidity = clamp(humidity, 30, 95);
      battery = Math.max(5, battery - 0.001);
      return [
        {
          path: "/v1/telemetry",
          body: {
            timestamp: iso(now),
            payload: { humidity: { value: round(humidity, 1), unit: "%" }, battery: { value: Math.round(battery), unit: "%" } },
          },
        },
      ];
    },
    describe: () => `${round(humidity, 1)} %RH`,
  };
}

/**
 * Hallway motion: quiet stretches and bursts of a few readings. Every change of state is also a
 * home event (`state_changed`, routed `home.hallway.hallway-motion.state_changed`). The first
 * reading starts a burst, so a single round already shows the event path.
 */
export function motionModel(random: Random): DeviceModel {
  let detected = false;
  let remaining = 0;
  let first = true;
  return {
    next(now) {
      const previous = detected;
      if (detected) {
        remaining--;
        if (remaining <= 0) detected = false;
      } else if (first || random() < 0.12) {
        detected = true;
        remaining = 2 + Math.floor(random() * 4);
      }
      first = false;
      const out: Outgoing[] = [{ path: "/v1/telemetry", body: { timestamp: iso(now), payload: { motion: detected } } }];
      if (detected !== previous) {
        const state = (on: boolean) => (on ? "detected" : "clear");
        out.push({
          path: "/v1/events",
          body: {
            timestamp: iso(now),
            event_type: "state_changed",
            payload: { event_type: "state_changed", previous_state: state(previous), current_state: state(detected) },
          },
        });
      }
      return out;
    },
    describe: () => (detected ? "motion" : "clear"),
  };
}

/** The meter never draws more than this (base load plus the biggest appliance). */
export const MAX_POWER_KW = 3;

/**
 * Where the meter's counter starts: a plausible reading that grows with the wall clock at
 * MAX_POWER_KW, so a restarted simulator never reports less than the previous run reached (the
 * counter grows by at most MAX_POWER_KW × time while it runs). Seed 004's counter is monotonic.
 */
export function energyStartKwh(now: number): number {
  return round(1000 + (MAX_POWER_KW * Math.max(0, now - Date.UTC(2026, 0, 1))) / 3_600_000, 4);
}

/**
 * Seed 004's energy meter: a base load drifting around 0.35 kW, appliances switching on now and
 * then (a kettle, an oven), mains voltage around 230 V, and a kWh counter that only ever grows,
 * by the power drawn over the time between readings.
 */
export function energyModel(random: Random, startKwh?: number): DeviceModel {
  let total: number | undefined = startKwh;
  let lastAt: number | undefined;
  let base = 0.3 + random() * 0.1;
  let appliance = 0;
  let applianceLeft = 0;
  let power = base;
  return {
    next(now) {
      total ??= energyStartKwh(now);
      if (lastAt !== undefined) total += (power * Math.max(0, now - lastAt)) / 3_600_000;
      lastAt = now;
      base = clamp(base + gaussian(random) * 0.02, 0.15, 0.6);
      if (applianceLeft > 0) applianceLeft--;
      else if (random() < 0.05) {
        appliance = random() < 0.5 ? 2.0 + random() * 0.4 : 1.2 + random() * 0.8;
        applianceLeft = 1 + Math.floor(random() * 4);
      } else appliance = 0;
      power = round(Math.min(MAX_POWER_KW, base + appliance + Math.abs(gaussian(random)) * 0.01), 3);
      const voltage = round(230 + gaussian(random) * 1.5, 1);
      return [
        {
          path: "/v1/telemetry",
          body: {
            timestamp: iso(now),
            payload: {
              total_energy_kwh: round(total, 4),
              power_kw: power,
              voltage,
              current: round((power * 1000) / voltage, 2),
            },
          },
        },
      ];
    },
    describe: () => `${total === undefined ? "-" : round(total, 3)} kWh @ ${power} kW`,
  };
}

export function modelFor(type: string, random: Random, options: { energyStartKwh?: number } = {}): DeviceModel | undefined {
  switch (type) {
    case "temperature":
      return temperatureModel(random);
    case "humidity":
      return humidityModel(random);
    case "motion":
      return motionModel(random);
    case "energy":
      return energyModel(random, options.energyStartKwh);
    default:
      return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// The simulator
