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
 * - Demand samples for the predictor: per channel, one sample per 5-minute bucket (the demand seen by the
 *   bucket's first tick), for lookbackWeeks + 1 weeks, as a dense array from a start bucket (gaps are null).
 *   2 weeks of lookback keep 3 × 2016 numbers per channel: about 20 kB of JSON per channel, stored gzipped
 *   (shared/adapters/dynamo-document-store.ts) in one item well under DynamoDB's 400 kB.
 * - The last 20 decisions (ScalingDecided data, newest first), for GET /groups/{name}/scaling; the group's
 *   stream holds them all.
 */
import { canonicalJson } from '../canonical.ts';
import type { ScalingDecidedData } from '../groups/events.ts';
import type { Channel } from '../schemas.ts';
import { CHANNELS } from '../schemas.ts';
import type { ScaleDecision, ScaleRecord } from './autoscaler.ts';
import { type CompiledScalingPolicy, FLAP_MEMORY_SECONDS } from './policy.ts';
import type { DemandSample } from './predictor.ts';

export const SCALING_DOCUMENT_KIND = 'scaling';
export const DEMAND_BUCKET_MS = 5 * 60_000;
export const RECENT_DECISIONS = 20;
const WEEK_MS = 7 * 86_400_000;

export interface DemandBuckets {
  /** Index of the first bucket (epoch ms / DEMAND_BUCKET_MS). */
  start: number;
  /** Per channel the host type has a target for: sessions at bucket start + i; null where no tick sampled it. */
  channels: Partial<Record<Channel, Array<number | null>>>;
}

export interface HostTypeMemory {
  /** Change points of the recommendation and the count, oldest first. */
  history: ScaleRecord[];
  /** Epoch ms of the last change of the count. */
  lastScaleAt?: number;
  demand?: DemandBuckets;
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

/** One channel's samples for forecastDemand, sorted by time, with the tick's live demand as the newest. */
export function demandSamples(
  memory: HostTypeMemory | undefined,
  channel: Channel,
  live: { at: number; sessions: number },
): DemandSample[] {
  const samples: DemandSample[] = [];
  const buckets = memory?.demand;
  const values = buckets?.channels[channel] ?? [];
  values.forEach((sessions, i) => {
    if (sessions === null || buckets === undefined) return;
    const at = (buckets.start + i) * DEMAND_BUCKET_MS;
    if (at < live.at) samples.push({ at, sessions });
  });
  samples.push(live);
  return samples;
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

function withSample(
  buckets: DemandBuckets | undefined,
  demand: Partial<Record<Channel, number>>,
  channels: readonly Channel[],
  now: number,
  lookbackWeeks: number,
): DemandBuckets {
  const bucket = Math.floor(now / DEMAND_BUCKET_MS);
  const keep = Math.ceil(((lookbackWeeks + 1) * WEEK_MS) / DEMAND_BUCKET_MS);
  const start = buckets?.start ?? bucket;
  const out: DemandBuckets = { start, channels: {} };
  for (const channel of channels) {
    const values = [...(buckets?.channels[channel] ?? [])];
    // Later channels (a target added by a PUT) start with gaps, so every array counts from `start`.
    const index = bucket - start;
    if (index >= values.length) {
      while (values.length < index) values.push(null);
      values.push(demand[channel] ?? 0);
    }
    out.channels[channel] = values;
  }
  const length = Math.max(0, ...Object.values(out.channels).map((values) => values?.length ?? 0));
  const drop = Math.max(0, length - keep);
  if (drop > 0) {
    out.start += drop;
    for (const channel of channels) out.channels[channel] = out.channels[channel]?.slice(drop);
  }
  return out;
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
  const channels = CHANNELS.filter((channel) => policy.targets[channel] !== undefined);
  const sampled =
    policy.predictive.enabled && channels.length > 0
      ? withSample(memory?.demand, demand, channels, now, policy.predictive.lookbackWeeks)
      : undefined;
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
