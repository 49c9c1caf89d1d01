/*
 * fleetfold's autoscaler next to a Kubernetes-HPA-default policy, over the load traces in bench/traces/.
 * Both run in the same simulator with the same semantics (issue 9, item 6):
 *   - a decision every 15 s from the demand of that moment; raw desired = ceil(demand / targetPerHost);
 *   - a host ordered at t serves from t + bootSeconds; a host retired is drained (serves no new sessions,
 *     still paid for) for DRAIN_SECONDS, booting hosts are cancelled before ready ones are drained;
 *   - overload minutes: time during which demand > ready hosts × capacityPerHost;
 *   - host-hours: ready + booting + draining hosts over time; flaps: changes of direction of the count.
 * fleetfold runs with the defaults a user gets (a `scaling` block with only the trace's target and schedule);
 * the baseline is written out here from HPA's algorithm (not through fleetfold's code), with HPA's defaults:
 * tolerance 0.1, scale-down window 300 s, scale-up max(4 pods, 100%) per 15 s, scale-down 100% per 15 s.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decideScale, type ScaleRecord, toRecord } from '../shared/scaling/autoscaler.ts';
import { compileScalingPolicy, FLAP_MEMORY_SECONDS } from '../shared/scaling/policy.ts';
import { type DemandSample, forecastDemand } from '../shared/scaling/predictor.ts';
import { type ScheduleEntry, scheduledMinimum } from '../shared/scaling/schedule.ts';
import { emit, round } from './output.ts';

export interface Trace {
  name: string;
  stepSeconds: number;
  targetPerHost: number;
  capacityPerHost: number;
  bootSeconds: number;
  min: number;
  max: number;
  /** Sessions per step. */
  demand: number[];
  schedule?: ScheduleEntry[];
}

const SYNC_SECONDS = 15;
/** Calls end within a couple of minutes: a drained host is paid for this long. The same for both policies. */
const DRAIN_SECONDS = 120;
/** Monday 21 December 2026, 00:00 UTC: what the traces' time zero means (schedules are read against it). */
export const SIM_START = Date.UTC(2026, 11, 21);
/** The flap memory and one sync more: the record in force at its start tells the autoscaler it has watched an hour. */
const HISTORY_SECONDS = FLAP_MEMORY_SECONDS + SYNC_SECONDS;

/** A policy answers the desired count at each sync from what a monitor would see. */
type Policy = (now: number, demand: number) => number;

export interface Outcome {
  overloadMinutes: number;
  hostHours: number;
  flaps: number;
}

/** Both policies start warm, sized for the first demand, as a running group would be. */
export function initialHosts(trace: Trace): number {
  const needed = Math.ceil((trace.demand[0] ?? 0) / trace.targetPerHost);
  return Math.min(trace.max, Math.max(trace.min, needed));
}

export function simulate(trace: Trace, decide: Policy): Outcome {
  const duration = trace.demand.length * trace.stepSeconds;
  let booting: number[] = []; // ready-at times
  let ready = initialHosts(trace);
  let draining: number[] = []; // end times
  let overloadSeconds = 0;
  let hostSeconds = 0;
  let flaps = 0;
  let lastDirection = 0;
  for (let t = 0; t < duration; t += SYNC_SECONDS) {
    ready += booting.filter((at) => at <= t).length;
    booting = booting.filter((at) => at > t);
    draining = draining.filter((end) => end > t);
    const demand = trace.demand[Math.floor(t / trace.stepSeconds)] as number;

    const desired = decide(SIM_START + t * 1000, demand);
    const change = desired - (ready + booting.length);
    if (change > 0) {
      for (let i = 0; i < change; i++) booting.push(t + trace.bootSeconds);
    } else if (change < 0) {
      // Booting hosts carry no session: they go first (pickScaleIn's order), newest first.
      let remove = -change;
      booting.sort((a, b) => a - b);
      while (remove > 0 && booting.length > 0) {
        booting.pop();
        remove--;
      }
      ready -= remove;
      for (let i = 0; i < remove; i++) draining.push(t + DRAIN_SECONDS);
    }
    if (change !== 0) {
      const direction = Math.sign(change);
      if (lastDirection !== 0 && direction !== lastDirection) flaps++;
      lastDirection = direction;
    }

    const step = Math.min(SYNC_SECONDS, duration - t);
    if (demand > ready * trace.capacityPerHost) overloadSeconds += step;
    hostSeconds += (ready + booting.length + draining.length) * step;
  }
  return { overloadMinutes: overloadSeconds / 60, hostHours: hostSeconds / 3600, flaps };
}

/** Kubernetes HPA v2 with its defaults (pkg/controller/podautoscaler: replica_calculator + behaviors). */
export function hpaBaseline(trace: Trace): Policy {
  const tolerance = 0.1;
  const downWindow = 300_000;
  const period = 15_000;
  let current = initialHosts(trace);
  const recommendations: Array<{ at: number; replicas: number }> = [];
  const events: Array<{ at: number; delta: number }> = [];
  return (now, demand) => {
    const ratio = current === 0 ? Number.POSITIVE_INFINITY : demand / (current * trace.targetPerHost);
    const raw = Math.abs(ratio - 1) <= tolerance ? current : Math.ceil(demand / trace.targetPerHost);
    recommendations.push({ at: now, replicas: raw });
    while ((recommendations[0]?.at ?? now) <= now - downWindow) recommendations.shift();
    // Scale-up window 0: the newest recommendation; scale-down: the highest of the last 300 s.
    const highest = Math.max(...recommendations.map((r) => r.replicas));
    let desired = raw > current ? raw : Math.min(current, highest);
    while ((events[0]?.at ?? now) <= now - period) events.shift();
    const added = events.reduce((sum, e) => sum + Math.max(0, e.delta), 0);
    const removed = events.reduce((sum, e) => sum + Math.max(0, -e.delta), 0);
    const upLimit = Math.max(current - added + 4, Math.ceil((current - added) * 2));
    const downLimit = Math.floor((current + removed) * 0);
    desired = Math.min(Math.max(desired, downLimit), Math.max(upLimit, current));
    desired = Math.min(trace.max, Math.max(trace.min, desired));
    if (desired !== current) events.push({ at: now, delta: desired - current });
    current = desired;
    return current;
  };
}

/** fleetfold with a user's defaults: only the target per host and the trace's announced schedule are given. */
export function fleetfoldPolicy(trace: Trace): Policy {
  const policy = compileScalingPolicy(
    { targets: { voice: trace.targetPerHost }, schedule: trace.schedule ?? [] },
    { min: trace.min, max: trace.max, channels: ['voice'] },
    { bootSeconds: trace.bootSeconds },
  );
  let current = initialHosts(trace);
  let history: ScaleRecord[] = [];
  const samples: DemandSample[] = [];
  return (now, demand) => {
    samples.push({ at: now, sessions: demand });
    const forecast = policy.predictive.enabled ? forecastDemand(samples, now, policy.predictive) : undefined;
    history = history.filter((record) => record.at > now - HISTORY_SECONDS * 1000);
    const decision = decideScale({
      policy,
      now,
      counts: { desired: current, ready: current, booting: 0, draining: 0 },
      demand: { voice: demand },
      history,
      scheduledMinimum: scheduledMinimum(policy.schedule, now).minimum,
      ...(forecast === undefined ? {} : { forecast: { voice: forecast.sessions } }),
    });
    history.push(toRecord(decision, now));
    current = decision.desired;
    return current;
  };
}

export function loadTraces(folder = join(new URL('.', import.meta.url).pathname, 'traces')): Trace[] {
  return readdirSync(folder)
    .filter((file) => file.endsWith('.json'))
    .sort()
    .map((file) => JSON.parse(readFileSync(join(folder, file), 'utf8')) as Trace);
}

export async function benchAutoscale(): Promise<void> {
  for (const trace of loadTraces()) {
    const ours = simulate(trace, fleetfoldPolicy(trace));
    const baseline = simulate(trace, hpaBaseline(trace));
    emit({
      name: `autoscale.${trace.name}`,
      value: round(ours.overloadMinutes, 2),
      unit: 'min',
      hostHours: round(ours.hostHours, 1),
      flaps: ours.flaps,
      baseline: {
        overloadMinutes: round(baseline.overloadMinutes, 2),
        hostHours: round(baseline.hostHours, 1),
        flaps: baseline.flaps,
      },
    });
  }
}
