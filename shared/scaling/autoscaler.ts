/**
 * The autoscaler's decision for one host type, as a pure function: the compiled policy, `now`, the counts, the
 * observed demand and metrics, the recent decisions, the scheduled minimum and the forecast come in; the
 * desired count and everything that went into it come out, ready to be stored as the decision's event.
 *
 * The order follows Kubernetes HPA (pkg/controller/podautoscaler) so its defaults mean the same here:
 *   1. recommendation: hosts needed for the demand (pooled over channels), the load, the forecast; held at the
 *      current count while within the tolerance; business metrics may add a step or hold scale-in;
 *   2. stabilization: scale up to the LOWEST recommendation of the up window, down to the HIGHEST of the down
 *      window (so a dip must last the whole window), the down window doubled per dip of the last hour that
 *      came back (countReturns);
 *   3. step limits per period, counted from the count at the period's start;
 *   4. cooldown (scale-in only), the scheduled minimum (an operator's explicit floor, not rate limited), min/max.
 */
import type { Channel } from '../schemas.ts';
import { CHANNELS } from '../schemas.ts';
import type { Bound, Direction, HostCounts, MetricVerdict, ScaleExplanation } from './decision-types.ts';
import { type CompiledScalingPolicy, FLAP_MEMORY_SECONDS, type StepLimit } from './policy.ts';

export type { Bound, Direction, HostCounts, MetricVerdict, ScaleExplanation } from './decision-types.ts';

/** One past decision, as stored in the group's stream (the inputs of the next ones). */
export interface ScaleRecord {
  /** Epoch milliseconds. */
  at: number;
  /** The recommendation before stabilization (what the windows are made of). */
  recommendation: number;
  from: number;
  to: number;
  /** What made the recommendation; a hold within the tolerance is not a demand coming back. */
  recommendedBy?: Bound;
  /**
   * The fewest hosts that would have held this tick's demand within the tolerance (ceil(needed / (1 + tolerance)));
   * the scale-down window reads it instead of the recommendation. Absent in older records: the recommendation.
   */
  holds?: number;
}

export interface ScaleInput {
  policy: CompiledScalingPolicy;
  /** Epoch milliseconds. */
  now: number;
  counts: HostCounts;
  /** Live sessions per channel, summed over the host type's hosts. */
  demand: Partial<Record<Channel, number>>;
  /** Average load (0..1) over the ready hosts. */
  load?: number;
  /** Business metrics as the hosts report them (aggregated by the caller, e.g. the fleet's p99 or mean MOS). */
  metrics?: Record<string, number>;
  /** Recent decisions, any order; older than the longest window is ignored. */
  history: readonly ScaleRecord[];
  /** The last time the count changed; taken from the history when not given. */
  lastScaleAt?: number;
  /** From scheduledMinimum(policy.schedule, now). */
  scheduledMinimum?: number;
  /** Sessions per channel expected within the lead (forecastDemand: the weekly history and the trend). */
  forecast?: Partial<Record<Channel, number>>;
}

export interface ScaleDecision {
  desired: number;
  previous: number;
  direction: Direction;
  /** Store it in the next decisions' history (toRecord). */
  recommendation: number;
  recommendedBy: Bound;
  /** Store it too: what the scale-down window of later decisions reads (ScaleRecord.holds). */
  holds: number;
  boundBy: Bound;
  inputs: ScaleExplanation;
}

const clamp = (value: number, low: number, high: number) => Math.min(high, Math.max(low, value));

/** Host fractions needed for per-channel sessions: channels on one host type share its hosts. */
export function pooledHosts(
  sessions: Partial<Record<Channel, number>>,
  targets: Partial<Record<Channel, number>>,
): number | undefined {
  let hosts: number | undefined;
  for (const channel of CHANNELS) {
    const target = targets[channel];
    if (target === undefined) continue;
    hosts = (hosts ?? 0) + Math.max(0, sessions[channel] ?? 0) / target;
  }
  return hosts;
}

function judgeMetric(
  metric: CompiledScalingPolicy['metrics'][number],
  value: number | undefined,
  current: number,
  sizedByUsage: boolean,
): MetricVerdict {
  const base: MetricVerdict = {
    name: metric.name,
    worse: metric.worse,
    provision: metric.provision,
    ...(metric.deprovision === undefined ? {} : { deprovision: metric.deprovision }),
    verdict: 'unreported',
    ...(value === undefined ? {} : { value }),
  };
  if (value === undefined || !Number.isFinite(value)) return base;
  const worseThan = (threshold: number) =>
    metric.worse === 'higher' ? value > threshold : value < threshold;
  const betterThan = (threshold: number) =>
    metric.worse === 'higher' ? value < threshold : value > threshold;
  if (worseThan(metric.provision))
    return { ...base, verdict: 'provision', proposes: current + metric.stepHosts };
  if (metric.deprovision === undefined || betterThan(metric.deprovision)) {
    // With usage targets the demand sizes the fleet; without any, a good metric is the only reason to shrink.
    return sizedByUsage
      ? { ...base, verdict: 'release' }
      : { ...base, verdict: 'release', proposes: Math.max(0, current - metric.stepHosts) };
  }
  return { ...base, verdict: 'hold', proposes: current };
}

/**
 * Dips of the memory that came back: the recommendation fell below the count and later rose to it again,
 * whether the window absorbed the dip or a scale-in took it (then the scale-out that followed was a flap).
 * Each doubles the scale-down window: a demand that keeps coming back is not worth the boot and drain of
 * chasing it. A real decline never comes back, so it keeps the plain window.
 */
export function countReturns(history: readonly ScaleRecord[], now: number): number {
  const recent = history
    .filter((record) => record.at > now - FLAP_MEMORY_SECONDS * 1000 && record.at <= now)
    .sort((a, b) => a.at - b.at);
  let returns = 0;
  let dipFrom: number | undefined;
  for (const record of recent) {
    if (dipFrom === undefined) {
      if (record.recommendation < record.from) dipFrom = record.from;
    } else if (record.recommendation >= dipFrom && record.recommendedBy !== 'tolerance') {
      returns++;
      dipFrom = undefined;
    }
  }
  return returns;
}

/**
 * The count at the start of the period, seen from each side: the hosts added (or removed) in the period are
 * taken back, as HPA does, so a run of small steps cannot add up to more than one period's allowance.
 */
function stepBounds(
  history: readonly ScaleRecord[],
  now: number,
  current: number,
  up: StepLimit,
  down: StepLimit,
): { upTo: number; downTo: number } {
  const changedIn = (periodSeconds: number, sign: 1 | -1) =>
    history
      .filter((record) => record.at > now - periodSeconds * 1000 && record.at <= now)
      .reduce((sum, record) => sum + Math.max(0, sign * (record.to - record.from)), 0);
  const upStart = current - changedIn(up.periodSeconds, 1);
  const upTo = Math.max(upStart + (up.hosts ?? 0), Math.ceil(upStart * (1 + (up.percent ?? 0) / 100)));
  const downStart = current + changedIn(down.periodSeconds, -1);
  const downTo = Math.min(
    downStart - (down.hosts ?? 0),
    Math.floor(downStart * (1 - Math.min(100, down.percent ?? 0) / 100)),
  );
  // A limit never forces a change: the current count is always allowed.
  return { upTo: Math.max(upTo, current), downTo: Math.min(Math.max(0, downTo), current) };
}

export function decideScale(input: ScaleInput): ScaleDecision {
  const { policy, now, counts, history } = input;
  const current = counts.desired;
  const sizedByUsage = Object.keys(policy.targets).length > 0 || policy.targetLoad !== undefined;

  // 1. Recommendation.
  const hostsForDemand = pooledHosts(input.demand, policy.targets);
  const load =
    policy.targetLoad !== undefined && input.load !== undefined
      ? {
          value: input.load,
          target: policy.targetLoad,
          hosts: (counts.ready * input.load) / policy.targetLoad,
        }
      : undefined;
  const forecastHosts =
    input.forecast === undefined ? undefined : pooledHosts(input.forecast, policy.targets);
  const candidates: Array<[Bound, number]> = [];
  if (hostsForDemand !== undefined) candidates.push(['demand', hostsForDemand]);
  if (load !== undefined) candidates.push(['load', load.hosts]);
  if (forecastHosts !== undefined) candidates.push(['forecast', forecastHosts]);
  let boundBy: Bound = 'no-signal';
  let recommendation = current;
  let ratio: number | undefined;
  let within = false;
  let needed: number | undefined;
  if (candidates.length > 0) {
    const [source, most] = candidates.reduce((best, next) => (next[1] > best[1] ? next : best));
    needed = most;
    ratio = current === 0 ? undefined : needed / current;
    // HPA's tolerance: a change smaller than it is noise, and the count stays.
    // (≤, with room for rounding: 2 hosts × 50 × 1.1 is 110.00000000000001 in floating point.)
    within = ratio !== undefined && Math.abs(ratio - 1) <= policy.tolerance + 1e-9;
    recommendation = within ? current : Math.ceil(needed - 1e-9);
    boundBy = within ? 'tolerance' : source;
  }
  const metrics = policy.metrics.map((metric) =>
    judgeMetric(metric, input.metrics?.[metric.name], current, sizedByUsage),
  );
  if (candidates.length === 0) {
    // Without usage signals the metrics alone size the fleet (a good one lets it shrink a step).
    const proposals = metrics.flatMap((verdict) =>
      verdict.proposes === undefined ? [] : [verdict.proposes],
    );
    if (proposals.length > 0) {
      recommendation = Math.max(...proposals);
      boundBy = 'metric';
    }
  } else {
    // With them, a metric past its provision threshold adds a step; one in its band holds scale-in.
    for (const verdict of metrics) {
      if (verdict.proposes !== undefined && verdict.proposes > recommendation) {
        recommendation = verdict.proposes;
        boundBy = 'metric';
      }
    }
  }
  recommendation = clamp(recommendation, policy.min, policy.max);
  const recommendedBy = boundBy;
  // What this tick tells the scale-down windows of later ticks. When the count was too large for the demand by
  // more than the tolerance, the fewest hosts that hold the demand within the tolerance (where their own
  // scale-out would start), not ceil(): else demand hovering at a whole number of hosts (6.0 ± noise, on 7)
  // rounds up to the current count every other tick and keeps it in the window for good. A tick that found the
  // count right (within the tolerance), asked for more hosts or went by a metric holds its recommendation: a
  // dip from a well-sized count still has to last the whole window, and a scale-out is not rounded away.
  const holds =
    needed === undefined ||
    recommendedBy === 'metric' ||
    recommendedBy === 'tolerance' ||
    recommendation > current
      ? recommendation
      : clamp(
          Math.min(recommendation, Math.ceil(needed / (1 + policy.tolerance) - 1e-9)),
          policy.min,
          policy.max,
        );

  // 2. Stabilization windows. Until the autoscaler has watched the host type for the flap memory it cannot
  // know whether its dips come back, so it assumes one did (the window a single return would give).
  const warmingUp = !history.some((record) => record.at <= now - FLAP_MEMORY_SECONDS * 1000);
  const returns = Math.max(countReturns(history, now), warmingUp ? 1 : 0);
  const downSeconds = Math.min(
    policy.stabilization.maxScaleDownSeconds,
    policy.stabilization.scaleDownSeconds * 2 ** returns,
  );
  const upSeconds = policy.stabilization.scaleUpSeconds;
  let lowest = recommendation;
  let highest = recommendation;
  for (const record of history) {
    if (record.at > now) continue;
    if (record.at > now - upSeconds * 1000) lowest = Math.min(lowest, record.recommendation);
    if (record.at <= now - downSeconds * 1000) continue;
    const assumed = warmingUp && record.at <= now - policy.stabilization.scaleDownSeconds * 1000;
    if (assumed && record.recommendedBy === 'forecast') continue;
    highest = Math.max(highest, record.holds ?? record.recommendation);
  }
  let desired = current;
  if (desired < lowest) desired = lowest;
  if (desired > highest) desired = highest;
  if (desired !== recommendation) boundBy = 'stabilization';

  // 3. Step limits.
  const limits = stepBounds(history, now, current, policy.scaleUp, policy.scaleDown);
  if (desired > limits.upTo) {
    desired = limits.upTo;
    boundBy = 'step-limit';
  } else if (desired < limits.downTo) {
    desired = limits.downTo;
    boundBy = 'step-limit';
  }

  // 4. Cooldown (scale-in only: an overloaded fleet must never wait), schedule, bounds.
  const lastScaleAt =
    input.lastScaleAt ??
    history.reduce<number | undefined>(
      (latest, record) =>
        record.to !== record.from && record.at <= now && record.at > (latest ?? -Infinity)
          ? record.at
          : latest,
      undefined,
    );
  let cooldown: ScaleExplanation['cooldown'];
  if (policy.cooldownSeconds > 0 && lastScaleAt !== undefined) {
    const until = lastScaleAt + policy.cooldownSeconds * 1000;
    if (now < until) {
      cooldown = { seconds: policy.cooldownSeconds, until: new Date(until).toISOString() };
      if (desired < current) {
        desired = current;
        boundBy = 'cooldown';
      }
    }
  }
  if (input.scheduledMinimum !== undefined && desired < input.scheduledMinimum) {
    desired = input.scheduledMinimum;
    boundBy = 'schedule';
  }
  if (desired < policy.min) {
    desired = policy.min;
    boundBy = 'min';
  }
  if (desired > policy.max) {
    desired = policy.max;
    boundBy = 'max';
  }

  return {
    desired,
    previous: current,
    direction: desired > current ? 'up' : desired < current ? 'down' : 'hold',
    recommendation,
    recommendedBy,
    holds,
    boundBy,
    inputs: {
      counts,
      demand: input.demand,
      targets: policy.targets,
      ...(hostsForDemand === undefined ? {} : { hostsForDemand }),
      ...(load === undefined ? {} : { load }),
      ...(input.forecast === undefined || forecastHosts === undefined
        ? {}
        : {
            forecast: {
              sessions: input.forecast,
              hosts: forecastHosts,
              leadSeconds: policy.predictive.leadSeconds,
            },
          }),
      tolerance: { value: policy.tolerance, ...(ratio === undefined ? {} : { ratio }), within },
      metrics,
      recommendation,
      window: {
        up: { seconds: upSeconds, lowest },
        down: { seconds: downSeconds, highest, returns, ...(warmingUp ? { warmingUp } : {}) },
      },
      stepLimits: limits,
      ...(cooldown === undefined ? {} : { cooldown }),
      ...(input.scheduledMinimum === undefined ? {} : { scheduledMinimum: input.scheduledMinimum }),
      min: policy.min,
      max: policy.max,
    },
  };
}

/** The record to keep in the history for the next decisions. */
export function toRecord(decision: ScaleDecision, now: number): ScaleRecord {
  return {
    at: now,
    recommendation: decision.recommendation,
    from: decision.previous,
    to: decision.desired,
    recommendedBy: decision.recommendedBy,
    holds: decision.holds,
  };
}

export interface ScaleInCandidate {
  id: string;
  /** Live sessions on the host now. */
  sessions: number;
}

/**
 * Which `n` hosts to retire: those without live sessions first, then the fewest sessions, then by id (stable
 * across ticks, so consecutive decisions pick the same hosts). Picking is not terminating: the planner drains
 * a picked host (out of its load balancer, no new sessions) and terminates it only when its sessions end or
 * the drain policy's timeout passes (shared/groups/planner-drain.ts), inside the shared disruption budget.
 */
export function pickScaleIn<T extends ScaleInCandidate>(hosts: readonly T[], n: number): T[] {
  const order = [...hosts].sort(
    (a, b) =>
      Number(a.sessions > 0) - Number(b.sessions > 0) ||
      a.sessions - b.sessions ||
      (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
  );
  return order.slice(0, Math.max(0, Math.min(n, order.length)));
}
