/** What seed 004's energy API answers (GET /api/v1/energy/latest and /hourly; docs/api.md). */
import { z } from "zod";

/** One meter's latest readings, in the names of seed 004's meter payload (kW, kWh, V, A). */
export const EnergyLatestRow = z.object({
  device_id: z.string(),
  timestamp: z.string(),
  total_energy_kwh: z.number().nullable(),
  power_kw: z.number().nullable(),
  voltage: z.number().nullable(),
  current: z.number().nullable(),
});
export type EnergyLatestRow = z.infer<typeof EnergyLatestRow>;
export const EnergyLatestAnswer = z.array(EnergyLatestRow);
export type EnergyLatestAnswer = z.infer<typeof EnergyLatestAnswer>;

/** One meter's hour: mean power and the energy its counter moved. */
export const EnergyHourlyRow = z.object({
  hour: z.string(),
  device_id: z.string(),
  avg_power_kw: z.number().nullable(),
  energy_kwh: z.number().nullable(),
  readings: z.number().int(),
});
export type EnergyHourlyRow = z.infer<typeof EnergyHourlyRow>;
export const EnergyHourlyAnswer = z.array(EnergyHourlyRow);
export type EnergyHourlyAnswer = z.infer<typeof EnergyHourlyAnswer>;
