import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decideScale } from '../shared/scaling/autoscaler.ts';
import { compileScalingPolicy } from '../shared/scaling/policy.ts';
import { type DemandSample, forecastDemand } from '../shared/scaling/predictor.ts';

const WEEK = 7 * 86_400_000;
const STEP = 60_000;
const START = Date.UTC(2026, 10, 2); // a Monday

/** `weeks` identical weeks scaled by `growth` per week: a base load and one daily peak of `peakMinutes`. */
function weeklyHistory(weeks: number, peakAt: number, peakMinutes: number, growth: number): DemandSample[] {
  const samples: DemandSample[] = [];
  for (let at = START; at < START + weeks * WEEK; at += STEP) {
    const week = Math.floor((at - START) / WEEK);
    const inWeek = (at - START) % WEEK;
    const peak = inWeek >= peakAt && inWeek < peakAt + peakMinutes * STEP;
    samples.push({ at, sessions: (peak ? 2000 : 200) * growth ** week });
  }
  return samples;
}

describe('forecastDemand', () => {
  it('says nothing without history, and nothing seasonal with less than a week', () => {
    expect(
      forecastDemand([], START, { leadSeconds: 120, lookbackWeeks: 2, trendSeconds: 600 }),
    ).toBeUndefined();
    const day = weeklyHistory(1, 3_600_000, 30, 1).filter((sample) => sample.at < START + 86_400_000);
    const forecast = forecastDemand(day, START + 86_400_000 - STEP, {
      leadSeconds: 120,
      lookbackWeeks: 2,
      trendSeconds: 600,
    });
    expect(forecast?.seasonal).toBeUndefined();
  });

  it('leads a weekly peak by at least leadSeconds, and not by a week', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 4 }),
        fc.integer({ min: 1, max: 6 * 24 * 60 }),
        fc.integer({ min: 60, max: 1800 }),
        fc.integer({ min: 1, max: 3 }),
        fc.double({ min: 0.9, max: 1.2, noNaN: true }),
        (weeks, peakMinute, leadSeconds, lookbackWeeks, growth) => {
          const peakAt = peakMinute * STEP;
          const history = weeklyHistory(weeks, peakAt, 30, growth);
          // The week to come: only its history up to `now` is known.
          const peakStart = START + weeks * WEEK + peakAt;
          const options = { leadSeconds, lookbackWeeks, trendSeconds: 600 };
          const forecastAt = (now: number) =>
            forecastDemand(
              history.filter((sample) => sample.at <= now),
              now,
              options,
            )?.sessions ?? 0;
          // Every minute from lead before the peak to its start, the forecast sees the peak coming.
          for (let now = peakStart - leadSeconds * 1000; now < peakStart; now += STEP) {
            expect(forecastAt(now)).toBeGreaterThan(1000);
          }
          // Earlier than a lead plus a minute before, it does not.
          expect(forecastAt(peakStart - leadSeconds * 1000 - 2 * STEP)).toBeLessThan(1000);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("scales the seasonal shape by this week's trend, within bounds", () => {
    const forecastIn = (growth: number) => {
      // Third week, 10 minutes before the daily peak: weeks 1 and 2 are the lookback.
      const now = START + 2 * WEEK + 86_400_000 - 10 * STEP;
      const history = weeklyHistory(3, 86_400_000, 60, growth).filter((sample) => sample.at <= now);
      return forecastDemand(history, now, { leadSeconds: 900, lookbackWeeks: 2, trendSeconds: 0 });
    };
    // 1.5x a week: this hour runs at 450 against a mean of (200 + 300) / 2 for the same hour before.
    const growing = forecastIn(1.5);
    expect(growing?.seasonal).toMatchObject({ weeks: 2 });
    expect(growing?.seasonal?.trendRatio).toBeCloseTo(1.8, 9);
    expect(growing?.sessions).toBeCloseTo(((2000 + 3000) / 2) * 1.8, 6); // 4500: this week's real peak
    // 3x a week would be a ratio of 4.5: bounded at 2, so one odd hour cannot blow the forecast up.
    const exploding = forecastIn(3);
    expect(exploding?.seasonal?.trendRatio).toBe(2);
    expect(exploding?.sessions).toBeCloseTo(((2000 + 6000) / 2) * 2, 6);
  });

  it('projects a rising trend that is still going on, and ignores a falling one', () => {
    const ramp: DemandSample[] = Array.from({ length: 20 }, (_, i) => ({
      at: START + i * STEP,
      sessions: 100 + 10 * i,
    }));
    const now = START + 19 * STEP;
    const rising = forecastDemand(ramp, now, { leadSeconds: 120, lookbackWeeks: 2, trendSeconds: 600 });
    expect(rising?.trend?.slopePerSecond).toBeCloseTo(10 / 60, 5);
    expect(rising?.sessions).toBeCloseTo(290 + 20, 5);
    const falling = ramp.map((sample) => ({ ...sample, sessions: 1000 - sample.sessions }));
    expect(
      forecastDemand(falling, now, { leadSeconds: 120, lookbackWeeks: 2, trendSeconds: 600 })?.sessions,
    ).toBe(710);
    // Levelled off: the recent part (here the newest three samples) is flat, so the ramp before it adds nothing.
    const levelled = ramp.map((sample, i) => ({ ...sample, sessions: i < 14 ? sample.sessions : 230 }));
    expect(
      forecastDemand(levelled, now, { leadSeconds: 120, lookbackWeeks: 2, trendSeconds: 600 })?.sessions,
    ).toBe(230);
  });

  it("makes the autoscaler order the peak's hosts at least the boot time ahead", () => {
    const bootSeconds = 240;
    const policy = compileScalingPolicy(
      { targets: { voice: 50 } },
      { min: 4, max: 80, channels: ['voice'] },
      { bootSeconds },
    );
    const history = weeklyHistory(2, 86_400_000 + 8 * 3_600_000, 60, 1);
    const peakStart = START + 2 * WEEK + 86_400_000 + 8 * 3_600_000;
    const now = peakStart - bootSeconds * 1000;
    const forecast = forecastDemand(
      history.filter((sample) => sample.at <= now),
      now,
      policy.predictive,
    );
    const decision = decideScale({
      policy,
      now,
      counts: { desired: 4, ready: 4, booting: 0, draining: 0 },
      demand: { voice: 200 },
      history: [],
      ...(forecast === undefined ? {} : { forecast: { voice: forecast.sessions } }),
    });
    expect(decision).toMatchObject({ direction: 'up', recommendation: 40, recommendedBy: 'forecast' });
  });
});
