/**
 * The autoscaler's memory of a group, the `scaling` document (id: the group's name, key `scaling#<group>`):
 * what decideScale and forecastDemand need from earlier ticks and nothing more, so an idle tick changes
 * nothing and writes nothing. Pure: the monitor reads it, folds a tick into it (recordTick) and writes it back
 * only when its content changed (sameContent).
 *
 * - The recommendation history is kept as change points: a record is added when the recommendation or the
 *   count changes, and a record stands for every tick until the next one (expandHistory gives decideScale the
 *   start and the end of each), so a steady recommendation costs no write. Records whose run ended before the
 *   longest window the policy reads (its max scale-down window, the hour of flap memory, the step periods) go.
 * - Demand for the predictor (shared/scaling/demand-memory.ts), per channel one sample per 5-minute bucket (the
 *   demand seen by the bucket's first tick): here only `recent` (the last 2 hours) and a `seasonal` cache of what
 *   the predictor reads of each lookback week during the current hour (about 26 buckets a week), loaded once an
 *   hour from the `scaling-demand` hour documents (`<group>#<hostType>#<hour>`, written once when the hour is
 *   over, deleted by the table's TTL after lookbackWeeks + 1 weeks). So this document stays a few kB per host
 *   type whatever lookbackWeeks is (8 weeks × 6 host types × 3 channels: under 64 kB of JSON), where the whole
 *   series (lookbackWeeks + 1 weeks of buckets) outgrew DynamoDB's 400 kB item and was rewritten every 5 minutes.
 * - The last 20 decisions (ScalingDecided data, newest first), for GET /groups/{name}/scaling; the group's
 *   stream holds them all.
 */
import { canonicalJson } from '../canonical.ts';
import type { ScalingDecidedData } from '../groups/events.ts';
import type { Channel } from '../schemas.ts';
import type { ScaleDecision, ScaleRecord } from './autoscaler.ts';
import { type DemandMemory, predictedChannels, withSample } from './demand-memory.ts';
import { type CompiledScalingPolicy, FLAP_MEMORY_SECONDS } from './policy.ts';

export const SCALING_DOCUMENT_KIND = 'scaling';
export const RECENT_DECISIONS = 20;

export interface HostTypeMemory {
  /** Change points of the recommendation and the count, oldest first. */
  history: ScaleRecord[];
  /** Epoch ms of the last change of the count. */
  lastScaleAt?: number;
  /** Only with the predictor on. */
  demand?: DemandMemory;
}

export interface ScalingDocument {
  hostTypes: Record<string, HostTypeMemory>;
  /** Newest first, at most RECENT_DECISIONS. */
  decisions: ScalingDecidedData[];
}

export const EMPTY_SCALING: ScalingDocument = { hostTypes: {}, decisions: [] };

/** How far back decideScale reads: the longest of its windows and periods. */
export function memorySeconds(policy: CompiledScalingPolicy): number {
  return Math.max(
    policy.stabilization.maxScaleDownSeconds,
    policy.stabilization.scaleDownSeconds,
    policy.stabilization.scaleUpSeconds,
    policy.scaleUp.periodSeconds,
    policy.scaleDown.periodSeconds,
    FLAP_MEMORY_SECONDS,
  );
}

/**
 * The history as decideScale reads it at `now`: each change point, and the same values again just before the
 * next one (for the last run, just before `now`), so a run that ended inside a window still counts there. A
 * run is taken to last until its successor: at most one tick longer than it did, which can hold a scale-in
 * one tick longer, never shorten a window. The end records change no count, so step limits see each change once.
 */
export function expandHistory(memory: HostTypeMemory | undefined, now: number): ScaleRecord[] {
  const history = memory?.history ?? [];
  const expanded: ScaleRecord[] = [];
  history.forEach((record, i) => {
    expanded.push(record);
    const end = (history[i + 1]?.at ?? now) - 1;
    if (end <= record.at) return;
    expanded.push({
      at: end,
      recommendation: record.recommendation,
      from: record.to,
      to: record.to,
      ...(record.recommendedBy === undefined ? {} : { recommendedBy: record.recommendedBy }),
    });
  });
  return expanded;
}

function recordsOf(history: readonly ScaleRecord[], decision: ScaleDecision, now: number): ScaleRecord[] {
  const last = history[history.length - 1];
  // A retried tick (or one that sees its own record) adds nothing.
  if (last !== undefined && last.at >= now) return [...history];
  const changed = decision.desired !== decision.previous;
  if (last !== undefined && !changed && last.recommendation === decision.recommendation) return [...history];
  return [
    ...history,
    {
      at: now,
      recommendation: decision.recommendation,
      from: decision.previous,
      to: decision.desired,
      recommendedBy: decision.recommendedBy,
    },
  ];
}

/** Drops the runs that ended before the memory: a record goes once the next one is older than the cutoff. */
function pruned(history: readonly ScaleRecord[], cutoff: number): ScaleRecord[] {
  let first = 0;
  while (first + 1 < history.length && (history[first + 1] as ScaleRecord).at <= cutoff) first++;
  return history.slice(first);
}

/**
 * The host type's memory after a tick: the decision's record if it changed something, the runs still inside
 * the memory, a demand sample if this tick opened a new 5-minute bucket (only with the predictor on).
 */
export function recordTick(
  memory: HostTypeMemory | undefined,
  policy: CompiledScalingPolicy,
  decision: ScaleDecision,
  demand: Partial<Record<Channel, number>>,
  now: number,
): HostTypeMemory {
  const history = pruned(recordsOf(memory?.history ?? [], decision, now), now - memorySeconds(policy) * 1000);
  const changed =
    decision.desired !== decision.previous &&
    !(memory?.lastScaleAt !== undefined && memory.lastScaleAt >= now);
  const lastScaleAt = changed ? now : memory?.lastScaleAt;
  const channels = predictedChannels(policy);
  const sampled =
    channels.length > 0 ? withSample(memory?.demand, demand, channels, now, policy.predictive) : undefined;
  return {
    history,
    ...(lastScaleAt === undefined ? {} : { lastScaleAt }),
    ...(sampled === undefined ? {} : { demand: sampled }),
  };
}

/** The decisions with the new ones in front, newest first, at most RECENT_DECISIONS (a retried one once). */
export function withDecisions(
  known: readonly ScalingDecidedData[],
  recorded: readonly ScalingDecidedData[],
): ScalingDecidedData[] {
  const seen = new Set(known.map((decision) => `${decision.hostType}#${decision.at}`));
  const fresh = recorded.filter((decision) => !seen.has(`${decision.hostType}#${decision.at}`));
  return [...fresh.reverse(), ...known].slice(0, RECENT_DECISIONS);
}

/** Whether writing `next` over `stored` would change anything (the monitor writes only then). */
export function sameContent(stored: ScalingDocument | undefined, next: ScalingDocument): boolean {
  return canonicalJson(stored ?? EMPTY_SCALING) === canonicalJson(next);
}
