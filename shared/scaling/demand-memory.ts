/**
 * The predictor's memory of one host type's demand, kept bounded whatever lookbackWeeks is: forecastDemand reads
 * only the last hour (and its trend window) and, for each lookback week w, the hour before `now − w weeks` and
 * the lead after it. So the scaling document keeps just those: `recent` (the last hours of 5-minute buckets) and a
 * `seasonal` cache of the week-old windows, loaded once an hour; the rest of the history lives in immutable hour
 * documents (`scaling-demand`, one per host type and hour, written once the hour is over, gone after
 * lookbackWeeks + 1 weeks). Pure: the hour documents are arguments and results, the monitor does the I/O.
 *
 * The forecast from recent + cache is exactly the one the full series would give (test/scaling-demand-hours
 * .property.test.ts): a week counts only with a sample in its hour before (so the sample in force at its start
 * is inside that hour), and that also guarantees forecastDemand's "a week of history" check.
 */
import { CHANNELS, type Channel } from '../schemas.ts';
import type { CompiledScalingPolicy } from './policy.ts';
import type { DemandSample, PredictorOptions } from './predictor.ts';

export const DEMAND_BUCKET_MS = 5 * 60_000;
export const DEMAND_HOUR_MS = 3_600_000;
const BUCKETS_PER_HOUR = DEMAND_HOUR_MS / DEMAND_BUCKET_MS;
const WEEK_MS = 7 * 86_400_000;

/** The kind of the hour documents (shared/groups/ports.ts DocumentKind). */
export const DEMAND_HOUR_KIND = 'scaling-demand';

export interface DemandBuckets {
  /** Index of the first bucket (epoch ms / DEMAND_BUCKET_MS). */
  start: number;
  /** Per channel the host type has a target for: sessions at bucket start + i; null where no tick sampled it. */
  channels: Partial<Record<Channel, Array<number | null>>>;
}

/** What any tick of one hour reads of the lookback weeks. */
export interface SeasonalCache {
  /** The hour it was loaded for (epoch ms / DEMAND_HOUR_MS). */
  hour: number;
  /** The lead it was loaded for: a PUT changing it reloads the cache. */
  leadSeconds: number;
  /** Index w − 1: the buckets around now − w weeks, trimmed to what the predictor reads during `hour`. */
  weeks: DemandBuckets[];
}

export interface DemandMemory {
  /** The last hours of buckets (recentHours), the current one included: the hour's mean and the trend window. */
  recent: DemandBuckets;
  seasonal?: SeasonalCache;
}

/** The body of a `scaling-demand` document: one completed hour of a host type's buckets. Never rewritten. */
export interface DemandHour {
  hour: number;
  /** Per channel, the hour's buckets from its first (null where no tick sampled one; trailing gaps left out). */
  channels: Partial<Record<Channel, Array<number | null>>>;
  /** Epoch ms after which it is no longer read: lookbackWeeks + 1 weeks after the hour (the table's TTL then deletes it). */
  expiresAt: number;
}

/** Id of a host type's hour document; hour docs of a group share its prefix. */
export function demandHourId(group: string, hostType: string, hour: number): string {
  return `${group}#${hostType}#${hour}`;
}

/** The channels the predictor samples: those with a target, none with it off. */
export function predictedChannels(policy: Pick<CompiledScalingPolicy, 'predictive' | 'targets'>): Channel[] {
  if (!policy.predictive.enabled) return [];
  return CHANNELS.filter((channel) => policy.targets[channel] !== undefined);
}

const hourOf = (at: number) => Math.floor(at / DEMAND_HOUR_MS);
const bucketOf = (at: number) => Math.floor(at / DEMAND_BUCKET_MS);

/**
 * Hours `recent` keeps, the current one included: the hour before now for the hour's mean, and as many more as
 * the trend window reaches back (the default 600 s needs none).
 */
export function recentHours(options: Pick<PredictorOptions, 'trendSeconds'>): number {
  return Math.max(2, 1 + Math.ceil((options.trendSeconds * 1000) / DEMAND_HOUR_MS));
}

/** Index one past the last bucket any channel holds. */
function endOf(buckets: DemandBuckets): number {
  const length = Math.max(0, ...Object.values(buckets.channels).map((values) => values?.length ?? 0));
  return buckets.start + length;
}

/** The buckets [from, to) of `buckets`, trailing and leading gaps kept so every channel counts from `from`. */
function slice(buckets: DemandBuckets, from: number, to: number): DemandBuckets {
  const start = Math.max(from, buckets.start);
  const channels: DemandBuckets['channels'] = {};
  for (const [channel, values] of Object.entries(buckets.channels) as [Channel, Array<number | null>][]) {
    channels[channel] = values.slice(start - buckets.start, Math.max(0, to - buckets.start));
  }
  return { start, channels };
}

/**
 * The week windows of the cache for hour `hour`: for week w, the buckets a tick at any now in the hour reads,
 * (now − w·week − 1 h, now − w·week + lead], as bucket indexes [from, to). Buckets from the first hour `recent`
 * keeps on are left out: recent holds them all hour long.
 */
function weekWindows(hour: number, options: PredictorOptions): Array<{ from: number; to: number }> {
  const lead = options.leadSeconds * 1000;
  const recentFrom = (hour - recentHours(options) + 1) * BUCKETS_PER_HOUR;
  const windows: Array<{ from: number; to: number }> = [];
  for (let week = 1; week <= options.lookbackWeeks; week++) {
    const shift = week * WEEK_MS;
    // Open at the start: a bucket starting exactly an hour before even the hour's first tick is never read.
    const from = bucketOf(hour * DEMAND_HOUR_MS - shift - DEMAND_HOUR_MS) + 1;
    // Every now of the hour is before its end, so every bucket read starts before end − shift + lead.
    const to = Math.ceil(((hour + 1) * DEMAND_HOUR_MS - shift + lead) / DEMAND_BUCKET_MS);
    windows.push({ from, to: Math.min(to, recentFrom) });
  }
  return windows;
}

function fresh(memory: DemandMemory | undefined, options: PredictorOptions, hour: number): boolean {
  const cache = memory?.seasonal;
  return (
    cache !== undefined &&
    cache.hour === hour &&
    cache.leadSeconds === options.leadSeconds &&
    cache.weeks.length === options.lookbackWeeks
  );
}

/**
 * The hours whose documents the cache for now's hour must be loaded from: none while it is fresh; else those
 * the week windows reach, but for the ones the stored recent buckets still hold (an outage's last hour, not
 * yet written when this tick reads).
 */
export function seasonalHoursToRead(
  memory: DemandMemory | undefined,
  options: PredictorOptions,
  now: number,
): number[] {
  const hour = hourOf(now);
  if (fresh(memory, options, hour)) return [];
  const heldFrom =
    memory === undefined ? Number.POSITIVE_INFINITY : Math.floor(memory.recent.start / BUCKETS_PER_HOUR);
  const hours = new Set<number>();
  for (const { from, to } of weekWindows(hour, options)) {
    for (let h = Math.floor(from / BUCKETS_PER_HOUR); h * BUCKETS_PER_HOUR < to; h++) {
      if (h < heldFrom) hours.add(h);
    }
  }
  return [...hours].sort((a, b) => a - b);
}

/**
 * The memory with its cache of `channels` loaded for now's hour (the same memory while fresh). `hours` are the
 * documents seasonalHoursToRead named, as read (missing: a gap, a young group); one past its expiry counts as
 * missing, whether or not the TTL has deleted it yet. A host type's first tick loads it too, so its next ticks
 * in the hour read nothing more.
 */
export function withSeasonal(
  memory: DemandMemory | undefined,
  options: PredictorOptions,
  hours: ReadonlyMap<number, DemandHour>,
  channels: readonly Channel[],
  now: number,
): DemandMemory {
  const hour = hourOf(now);
  if (memory !== undefined && fresh(memory, options, hour)) return memory;
  const recent = memory?.recent ?? { start: bucketOf(now), channels: {} };
  const sources: DemandBuckets[] = [recent];
  for (const document of hours.values()) {
    if (document.expiresAt > now)
      sources.push({ start: document.hour * BUCKETS_PER_HOUR, channels: document.channels });
  }
  const weeks = weekWindows(hour, options).map(({ from, to }) => {
    const window: DemandBuckets = { start: from, channels: {} };
    for (const channel of channels) {
      const values: Array<number | null> = Array.from({ length: Math.max(0, to - from) }, () => null);
      for (const source of sources) {
        (source.channels[channel] ?? []).forEach((sessions, i) => {
          const index = source.start + i - from;
          if (sessions !== null && index >= 0 && index < values.length) values[index] = sessions;
        });
      }
      window.channels[channel] = trimmed(values);
    }
    return window;
  });
  return { recent, seasonal: { hour, leadSeconds: options.leadSeconds, weeks } };
}

/** Trailing gaps cost bytes and say nothing (a young group's cache is mostly gaps). */
function trimmed(values: Array<number | null>): Array<number | null> {
  let end = values.length;
  while (end > 0 && values[end - 1] === null) end--;
  return values.slice(0, end);
}

/**
 * The hour documents to write at `now`: the stored recent buckets' last hour once a tick of a later hour comes
 * (earlier hours of recent were written when their successor began). A retried or concurrent tick names the
 * same document with the same content, so the writer may ignore one already there.
 */
export function completedHours(
  memory: DemandMemory | undefined,
  lookbackWeeks: number,
  now: number,
): DemandHour[] {
  if (memory === undefined) return [];
  const end = endOf(memory.recent);
  if (end <= memory.recent.start) return [];
  const last = Math.floor((end - 1) / BUCKETS_PER_HOUR);
  if (last >= hourOf(now)) return [];
  const from = last * BUCKETS_PER_HOUR;
  const part = slice(memory.recent, from, from + BUCKETS_PER_HOUR);
  const channels: DemandHour['channels'] = {};
  for (const [channel, values] of Object.entries(part.channels) as [Channel, Array<number | null>][]) {
    // Dense from the hour's first bucket, so a reader needs no start.
    channels[channel] = [...Array.from({ length: part.start - from }, () => null), ...values];
  }
  return [{ hour: last, channels, expiresAt: (last + 1) * DEMAND_HOUR_MS + (lookbackWeeks + 1) * WEEK_MS }];
}

/**
 * The memory after a tick: its demand in a new bucket (the demand seen by the bucket's first tick), recent cut
 * to recentHours. The cache is carried as withSeasonal left it.
 */
export function withSample(
  memory: DemandMemory | undefined,
  demand: Partial<Record<Channel, number>>,
  channels: readonly Channel[],
  now: number,
  options: PredictorOptions,
): DemandMemory {
  const bucket = bucketOf(now);
  const recent = memory?.recent;
  const start = recent?.start ?? bucket;
  const out: DemandBuckets = { start, channels: {} };
  for (const channel of channels) {
    const values = [...(recent?.channels[channel] ?? [])];
    // Later channels (a target added by a PUT) start with gaps, so every array counts from `start`.
    const index = bucket - start;
    if (index >= values.length) {
      while (values.length < index) values.push(null);
      values.push(demand[channel] ?? 0);
    }
    out.channels[channel] = values;
  }
  const keepFrom = (hourOf(now) - recentHours(options) + 1) * BUCKETS_PER_HOUR;
  const kept = out.start < keepFrom ? slice(out, keepFrom, Number.POSITIVE_INFINITY) : out;
  return { recent: kept, ...(memory?.seasonal === undefined ? {} : { seasonal: memory.seasonal }) };
}

/** One channel's samples for forecastDemand, sorted by time, with the tick's live demand as the newest. */
export function demandSamples(
  memory: DemandMemory | undefined,
  channel: Channel,
  live: { at: number; sessions: number },
): DemandSample[] {
  const byBucket = new Map<number, number>();
  for (const buckets of [
    ...(memory?.seasonal?.weeks ?? []),
    ...(memory === undefined ? [] : [memory.recent]),
  ]) {
    (buckets.channels[channel] ?? []).forEach((sessions, i) => {
      if (sessions !== null) byBucket.set(buckets.start + i, sessions);
    });
  }
  const samples: DemandSample[] = [];
  for (const [bucket, sessions] of [...byBucket].sort(([a], [b]) => a - b)) {
    const at = bucket * DEMAND_BUCKET_MS;
    if (at < live.at) samples.push({ at, sessions });
  }
  samples.push(live);
  return samples;
}

/**
 * A stored memory in either layout: before the hour documents, `demand` was the whole series, which serves as
 * this tick's recent (the cache for the hour is loaded from it, no read) and is then cut to recentHours. Its
 * older hours are not written out: the seasonal part has gaps until the hour documents cover the lookback.
 */
export function demandMemoryOf(stored: DemandMemory | DemandBuckets | undefined): DemandMemory | undefined {
  if (stored === undefined || 'recent' in stored) return stored;
  return { recent: stored };
}
