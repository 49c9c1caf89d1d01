/*
 * The predictor's bounded memory (shared/scaling/demand-memory.ts): folding ticks through recent buckets, hour
 * documents written when an hour is over and the seasonal cache loaded from them once an hour gives exactly the
 * forecast the whole 5-minute series (what the scaling document used to keep) gives, at every tick; and the
 * scaling document stays small for the largest lookback while an hour document is a few hundred bytes.
 */
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../agent/facts/simulated.ts';
import { MAX_DOCUMENT_ITEM_BYTES } from '../shared/adapters/dynamo-document-store.ts';
import {
  completedHours,
  DEMAND_BUCKET_MS,
  DEMAND_HOUR_MS,
  type DemandHour,
  type DemandMemory,
  demandMemoryOf,
  demandSamples,
  seasonalHoursToRead,
  withSample,
  withSeasonal,
} from '../shared/scaling/demand-memory.ts';
import { type DemandSample, forecastDemand, type PredictorOptions } from '../shared/scaling/predictor.ts';
import type { ScalingDocument } from '../shared/scaling/scaling-document.ts';
import type { Channel } from '../shared/schemas.ts';

const WEEK = 7 * 86_400_000;
const MINUTE = 60_000;
const START = Date.UTC(2026, 10, 2, 7, 23); // mid-hour, mid-bucket
const CHANNELS = ['voice', 'video'] as const;
type Demand = Record<(typeof CHANNELS)[number], number>;

/** What the scaling document used to keep: every bucket's first demand, lookbackWeeks + 1 weeks of them. */
class FullSeries {
  readonly #samples = new Map<Channel, DemandSample[]>(CHANNELS.map((channel) => [channel, []]));
  #last = Number.NEGATIVE_INFINITY;

  constructor(private readonly lookbackWeeks: number) {}

  samples(channel: Channel, live: DemandSample): DemandSample[] {
    return [...(this.#samples.get(channel) ?? []).filter((sample) => sample.at < live.at), live];
  }

  record(demand: Demand, now: number): void {
    const bucket = Math.floor(now / DEMAND_BUCKET_MS);
    if (bucket <= this.#last) return;
    this.#last = bucket;
    const keepFrom =
      (bucket + 1 - Math.ceil(((this.lookbackWeeks + 1) * WEEK) / DEMAND_BUCKET_MS)) * DEMAND_BUCKET_MS;
    for (const channel of CHANNELS) {
      const samples = this.#samples.get(channel) as DemandSample[];
      samples.push({ at: bucket * DEMAND_BUCKET_MS, sessions: demand[channel] });
      while ((samples[0] as DemandSample).at < keepFrom) samples.shift();
    }
  }
}

/** The monitor's demand part of a tick: read the hours named, load, forecast, write the hour over, sample. */
function tick(
  memory: DemandMemory | undefined,
  hours: Map<number, DemandHour>,
  options: PredictorOptions,
  demand: Demand,
  now: number,
): { memory: DemandMemory; forecasts: Array<ReturnType<typeof forecastDemand>>; reads: number } {
  const wanted = seasonalHoursToRead(memory, options, now);
  const read = new Map(
    wanted.flatMap((hour) => (hours.has(hour) ? [[hour, hours.get(hour) as DemandHour]] : [])),
  );
  const loaded = withSeasonal(memory, options, read, CHANNELS, now);
  const forecasts = CHANNELS.map((channel) =>
    forecastDemand(demandSamples(loaded, channel, { at: now, sessions: demand[channel] }), now, options),
  );
  // Put with expectedVersion 0: one already there stays.
  for (const hour of completedHours(loaded, options.lookbackWeeks, now))
    if (!hours.has(hour.hour)) hours.set(hour.hour, hour);
  return { memory: withSample(loaded, demand, CHANNELS, now, options), forecasts, reads: wanted.length };
}

/** A weekly shape with a daily peak, noise, and now and then an outage of the monitor. */
function ticksOf(seed: number, weeks: number): Array<{ at: number; demand: Demand }> {
  const next = mulberry32(seed);
  const ticks: Array<{ at: number; demand: Demand }> = [];
  for (let at = START; at < START + weeks * WEEK; ) {
    const day = ((at - START) % 86_400_000) / 86_400_000;
    const base = 100 + 400 * Math.max(0, Math.sin(day * 2 * Math.PI));
    ticks.push({
      at,
      demand: { voice: Math.round(base * (0.7 + 0.6 * next())), video: Math.round(50 * next()) },
    });
    const roll = next();
    // Mostly the 15 s to 10 min of a tick schedule; a retried tick (same time); rarely hours or a week without one.
    at +=
      roll < 0.05
        ? 0
        : roll < 0.995
          ? Math.round(15_000 + next() * 10 * MINUTE)
          : roll < 0.9985
            ? Math.round(next() * 30 * DEMAND_HOUR_MS)
            : // About a week: the hour before it, never written, is what the next hour's cache reads.
              Math.round(WEEK - next() * 3 * DEMAND_HOUR_MS);
  }
  return ticks;
}

const options = fc.record({
  lookbackWeeks: fc.integer({ min: 1, max: 3 }),
  leadSeconds: fc.oneof(fc.integer({ min: 0, max: 600 }), fc.integer({ min: 0, max: 3 * 3600 })),
  trendSeconds: fc.constantFrom(0, 300, 600, 3600, 5400),
});

describe('the predictor memory in hour documents', () => {
  it('forecasts at every tick exactly as the whole 5-minute series does', () => {
    fc.assert(
      fc.property(fc.integer(), options, (seed, predictor) => {
        const full = new FullSeries(predictor.lookbackWeeks);
        const hours = new Map<number, DemandHour>();
        let memory: DemandMemory | undefined;
        let seasonal = 0;
        for (const { at, demand } of ticksOf(seed, predictor.lookbackWeeks + 1.3)) {
          const result = tick(memory, hours, predictor, demand, at);
          const expected = CHANNELS.map((channel) =>
            forecastDemand(full.samples(channel, { at, sessions: demand[channel] }), at, predictor),
          );
          expect(result.forecasts).toEqual(expected);
          if (expected[0]?.seasonal !== undefined) seasonal += 1;
          memory = result.memory;
          full.record(demand, at);
        }
        // The runs reach the seasonal part, not only the trend.
        expect(seasonal).toBeGreaterThan(0);
      }),
      { numRuns: 40 },
    );
  }, 120_000);

  it('reads once an hour, lookbackWeeks × (2 + the lead in hours) documents at most', () => {
    const predictor = { lookbackWeeks: 2, leadSeconds: 120, trendSeconds: 600 };
    const hours = new Map<number, DemandHour>();
    let memory: DemandMemory | undefined;
    const readsByHour = new Map<number, number>();
    for (let at = START; at < START + 3 * WEEK; at += MINUTE) {
      const result = tick(memory, hours, predictor, { voice: 10, video: 1 }, at);
      const hour = Math.floor(at / DEMAND_HOUR_MS);
      if (result.reads > 0) readsByHour.set(hour, (readsByHour.get(hour) ?? 0) + result.reads);
      memory = result.memory;
    }
    // Every hour the ticks span (3 weeks from mid-hour: 505), once (the first at its second tick, after the
    // first wrote the memory), with 3 gets per week: the hour before, this one, the next (for the lead).
    expect(readsByHour.size).toBe(3 * 7 * 24 + 1);
    expect(new Set(readsByHour.values())).toEqual(new Set([6]));
    // Each completed hour written once, with its 12 buckets.
    expect(hours.size).toBe(3 * 7 * 24);
    expect(hours.get(Math.floor(START / DEMAND_HOUR_MS) + 1)?.channels.voice).toHaveLength(12);
  });

  it('ignores an hour document past its expiry, whether or not the TTL has deleted it', () => {
    const predictor = { lookbackWeeks: 1, leadSeconds: 0, trendSeconds: 0 };
    const now = START + 2 * WEEK;
    const hour = Math.floor(now / DEMAND_HOUR_MS) - 7 * 24;
    const memory: DemandMemory = {
      recent: { start: Math.floor(now / DEMAND_BUCKET_MS), channels: { voice: [] } },
    };
    const document = (expiresAt: number): DemandHour => ({
      hour,
      channels: { voice: Array(12).fill(5) },
      expiresAt,
    });
    const cached = (expiresAt: number) =>
      withSeasonal(memory, predictor, new Map([[hour, document(expiresAt)]]), ['voice'], now).seasonal
        ?.weeks[0]?.channels.voice;
    expect(cached(now + 1)).toContain(5);
    expect(cached(now)).toEqual([]);
  });

  /** A scaling document with full history (noisy demand, every bucket), in both layouts. */
  function documents(lookbackWeeks: number, hostTypes: number, channels: readonly Channel[]) {
    const predictor = { lookbackWeeks, leadSeconds: 300, trendSeconds: 600 };
    const next = mulberry32(lookbackWeeks * 100 + hostTypes);
    const noisy = () => Math.round(next() * 5000);
    const now = START + (lookbackWeeks + 1) * WEEK;
    const hour = Math.floor(now / DEMAND_HOUR_MS);
    const firstBucket = Math.floor((now - (lookbackWeeks + 1) * WEEK) / DEMAND_BUCKET_MS);
    const buckets = Math.floor(now / DEMAND_BUCKET_MS) - firstBucket + 1;
    const history = Array.from({ length: 30 }, (_, i) => ({
      at: now - i * 60_000,
      recommendation: 10 + i,
      from: 10,
      to: 11,
      recommendedBy: 'demand',
    }));
    const fresh: Record<string, unknown> = {};
    const old: Record<string, unknown> = {};
    let hourDocument: DemandHour | undefined;
    let reads = 0;
    for (let t = 0; t < hostTypes; t++) {
      const series = Object.fromEntries(channels.map((c) => [c, Array.from({ length: buckets }, noisy)]));
      const whole = { start: firstBucket, channels: series };
      old[`type-${t}`] = { history, lastScaleAt: now, demand: whole };
      // The hour documents of every completed hour, cut from the same series as the monitor would have.
      const hours = new Map<number, DemandHour>();
      for (let h = Math.ceil(firstBucket / 12); (h + 1) * 12 <= (hour - 1) * 12; h++) {
        const channelsOf = Object.fromEntries(
          channels.map((c) => [c, series[c]?.slice(h * 12 - firstBucket, (h + 1) * 12 - firstBucket)]),
        );
        hours.set(h, { hour: h, channels: channelsOf, expiresAt: (h + 1) * DEMAND_HOUR_MS + 9 * WEEK });
      }
      hourDocument ??= hours.values().next().value;
      const recentFrom = (hour - 1) * 12;
      const recent = {
        start: recentFrom,
        channels: Object.fromEntries(channels.map((c) => [c, series[c]?.slice(recentFrom - firstBucket)])),
      };
      const wanted = seasonalHoursToRead({ recent }, predictor, now);
      reads += wanted.length;
      const read = new Map(wanted.map((h) => [h, hours.get(h) as DemandHour]));
      fresh[`type-${t}`] = {
        history,
        lastScaleAt: now,
        demand: withSeasonal({ recent }, predictor, read, channels, now),
      };
    }
    const size = (body: unknown) => {
      const json = JSON.stringify({ hostTypes: body, decisions: [] } satisfies ScalingDocument | object);
      return { json: Buffer.byteLength(json), gzip: gzipSync(json).byteLength };
    };
    return {
      next: size(fresh),
      old: size(old),
      hour: Buffer.byteLength(JSON.stringify(hourDocument)),
      reads,
    };
  }

  it('keeps the scaling document small at 8 weeks × 6 host types × 3 channels; an hour document is tiny', () => {
    const largest = documents(8, 6, ['voice', 'sms', 'video']);
    expect(largest.next.json).toBeLessThan(64 * 1024);
    // The layout before hour documents could not even be stored.
    expect(largest.old.gzip).toBeGreaterThan(MAX_DOCUMENT_ITEM_BYTES);
    expect(largest.hour).toBeLessThan(1024);
    // Sizes for the record (bytes of JSON / gzipped), the old layout beside them.
    for (const [weeks, types, channels] of [
      [2, 1, ['voice']],
      [2, 2, ['voice', 'video']],
      [8, 1, ['voice']],
      [8, 6, ['voice', 'sms', 'video']],
    ] as const) {
      const { next, old, hour, reads } = documents(weeks, types, channels);
      console.log(
        `${weeks} weeks × ${types} host types × ${channels.length} channels: ${next.json} B JSON / ${next.gzip} B gzipped (before: ${old.json} / ${old.gzip}); hour document ${hour} B; ${reads} gets an hour`,
      );
    }
  });

  it('takes a document of the layout before hour documents as this tick’s recent buckets', () => {
    const predictor = { lookbackWeeks: 1, leadSeconds: 600, trendSeconds: 600 };
    const full = new FullSeries(1);
    let at = START;
    for (; at < START + 8 * 86_400_000; at += 5 * MINUTE) full.record({ voice: at % 997, video: 3 }, at);
    const samples = full.samples('voice', { at, sessions: 1 });
    const legacy = {
      start: Math.floor((samples[0] as DemandSample).at / DEMAND_BUCKET_MS),
      channels: { voice: samples.slice(0, -1).map((s) => s.sessions) },
    };
    const memory = demandMemoryOf(legacy);
    expect(seasonalHoursToRead(memory, predictor, at)).toEqual([]);
    const loaded = withSeasonal(memory, predictor, new Map(), ['voice'], at);
    expect(forecastDemand(demandSamples(loaded, 'voice', { at, sessions: 1 }), at, predictor)).toEqual(
      forecastDemand(samples, at, predictor),
    );
    expect(
      withSample(loaded, { voice: 1 }, ['voice'], at, predictor).recent.channels.voice?.length,
    ).toBeLessThanOrEqual(24);
  });
});
