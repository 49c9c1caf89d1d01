/**
 * The types of an autoscaler decision's explanation, on their own so the group's events can name them
 * (ScalingDecided's `inputs`) without importing the autoscaler and, through it, the definition schema.
 */
import type { Channel } from '../schemas.ts';

export interface HostCounts {
  /** The count the host type is meant to have now (the definition's, or the last decision's). */
  desired: number;
  ready: number;
  booting: number;
  draining: number;
}

export type Direction = 'up' | 'down' | 'hold';

/** Which step set the final count (the last one that changed it wins). */
export type Bound =
  | 'demand'
  | 'load'
  | 'forecast'
  | 'metric'
  | 'tolerance'
  | 'no-signal'
  | 'stabilization'
  | 'step-limit'
  | 'cooldown'
  | 'schedule'
  | 'min'
  | 'max';

export interface MetricVerdict {
  name: string;
  value?: number;
  worse: 'higher' | 'lower';
  provision: number;
  deprovision?: number;
  /** provision: past the provision threshold; hold: between the two; release: past deprovision; unreported. */
  verdict: 'provision' | 'hold' | 'release' | 'unreported';
  proposes?: number;
}

/** The explanation stored with the decision. */
export interface ScaleExplanation {
  counts: HostCounts;
  demand: Partial<Record<Channel, number>>;
  targets: Partial<Record<Channel, number>>;
  /** Σ sessions / target over the channels: the host fractions the pooled channels need. */
  hostsForDemand?: number;
  load?: { value: number; target: number; hosts: number };
  forecast?: { sessions: Partial<Record<Channel, number>>; hosts: number; leadSeconds: number };
  tolerance: { value: number; ratio?: number; within: boolean };
  metrics: MetricVerdict[];
  recommendation: number;
  window: {
    up: { seconds: number; lowest: number };
    /**
     * Dips that came back in the last hour (countReturns): each doubled the window. `warmingUp`: the host type
     * has less than an hour of history, so one return is assumed. `highest`: the most hosts any tick of the
     * window needed within the tolerance.
     */
    down: { seconds: number; highest: number; returns: number; warmingUp?: boolean };
  };
  stepLimits: { upTo: number; downTo: number };
  cooldown?: { seconds: number; until: string };
  scheduledMinimum?: number;
  min: number;
  max: number;
}
