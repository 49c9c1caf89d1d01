import { CHANNELS, type Channel, type MachineState, type MetricBands } from './schemas.ts';

/**
 * Load and live-session counts change all the time; writing each wiggle to the event log would flood it.
 * Only the band a metric sits in is state. Thresholds are ascending; band n means n thresholds were reached.
 */
export interface BandThresholds {
  load: readonly number[];
  sessions: readonly number[];
}

/** Band 0 of sessions is "no live sessions": the boundary draining depends on. */
export const DEFAULT_BANDS: BandThresholds = { load: [0.5, 0.8, 0.95], sessions: [1, 50, 200] };

export function bandOf(value: number, thresholds: readonly number[]): number {
  let band = 0;
  for (const threshold of thresholds) if (value >= threshold) band += 1;
  return band;
}

export function bandsOf(state: MachineState, thresholds: BandThresholds): MetricBands {
  const sessions = Object.fromEntries(
    CHANNELS.map((channel) => [channel, bandOf(state.operational.sessions[channel], thresholds.sessions)]),
  ) as Record<Channel, number>;
  return { load: bandOf(state.operational.load, thresholds.load), sessions };
}

export interface Metrics {
  load: number;
  sessions: Record<Channel, number>;
}

/** The part of a machine state that is event-logged: raw metrics replaced by their bands. */
export type TrackedState = Omit<MachineState, 'operational'> & {
  operational: { dataRefs: string[]; bands: MetricBands };
};

export function splitMetrics(
  state: MachineState,
  thresholds: BandThresholds,
): { tracked: TrackedState; metrics: Metrics } {
  const { load, sessions, dataRefs } = state.operational;
  return {
    tracked: { ...state, operational: { dataRefs, bands: bandsOf(state, thresholds) } },
    metrics: { load, sessions: { ...sessions } },
  };
}

export function parseThresholds(text: string, name: string): number[] {
  const values = text.split(',').map((part) => Number(part.trim()));
  if (
    values.some((value) => !Number.isFinite(value)) ||
    values.some((v, i) => i > 0 && v <= (values[i - 1] ?? v))
  ) {
    throw new Error(`${name} must be ascending comma-separated numbers, got "${text}"`);
  }
  return values;
}
