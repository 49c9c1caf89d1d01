import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  countReturns,
  decideScale,
  pickScaleIn,
  type ScaleDecision,
  type ScaleInput,
  type ScaleRecord,
  toRecord,
} from '../shared/scaling/autoscaler.ts';
import { type CompiledScalingPolicy, compileScalingPolicy } from '../shared/scaling/policy.ts';

const NOW = Date.UTC(2026, 11, 2, 12, 0);
const SYNC = 15_000;

function policyFor(
  overrides: Record<string, unknown> = {},
  bounds = { min: 2, max: 40 },
): CompiledScalingPolicy {
  return compileScalingPolicy(
    { targets: { voice: 50, video: 10 }, ...overrides },
    { ...bounds, channels: ['voice', 'video'] },
    { bootSeconds: 120 },
  );
}

/**
 * A record from an hour ago, outside every window: the autoscaler has watched the host type for its flap
 * memory, so it is not warming up (which assumes one returned dip and doubles the scale-down window).
 */
const watched = (count: number, at = NOW): ScaleRecord[] => [
  { at: at - 3_600_000, recommendation: count, from: count, to: count, recommendedBy: 'tolerance' },
];

function input(
  policy: CompiledScalingPolicy,
  desired: number,
  voice: number,
  extra: Partial<ScaleInput> = {},
): ScaleInput {
  return {
    policy,
    now: NOW,
    counts: { desired, ready: desired, booting: 0, draining: 0 },
    demand: { voice },
    history: watched(desired),
    ...extra,
  };
}

/** Runs decisions every 15 s over a demand series, carrying the history as the monitor would. */
function run(policy: CompiledScalingPolicy, start: number, demands: readonly number[]): ScaleDecision[] {
  let current = start;
  const history: ScaleRecord[] = watched(start);
  return demands.map((voice, i) => {
    const now = NOW + i * SYNC;
    const decision = decideScale({ ...input(policy, current, voice), now, history });
    history.push(toRecord(decision, now));
    current = decision.desired;
    return decision;
  });
}

const record = fc.record({
  at: fc.integer({ min: NOW - 3_600_000, max: NOW }),
  recommendation: fc.integer({ min: 0, max: 200 }),
  from: fc.integer({ min: 0, max: 200 }),
  to: fc.integer({ min: 0, max: 200 }),
});

describe('decideScale', () => {
  it('never goes below min or above max, whatever the demand, metrics, schedule, forecast and history', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 20 }),
        fc.integer({ min: 0, max: 40 }),
        fc.integer({ min: 0, max: 80 }),
        fc.integer({ min: 0, max: 100_000 }),
        fc.integer({ min: 0, max: 5000 }),
        fc.option(fc.integer({ min: 0, max: 100 }), { nil: undefined }),
        fc.option(fc.integer({ min: 0, max: 100_000 }), { nil: undefined }),
        fc.option(fc.double({ min: 0, max: 2000, noNaN: true }), { nil: undefined }),
        fc.array(record, { maxLength: 30 }),
        (min, span, desired, voice, video, scheduled, forecast, latency, history) => {
          const policy = policyFor(
            { metrics: [{ name: 'p99LatencyMs', provisionAbove: 250, deprovisionBelow: 100, stepHosts: 3 }] },
            { min, max: min + span },
          );
          const decision = decideScale({
            ...input(policy, desired, voice),
            demand: { voice, video },
            history,
            ...(scheduled === undefined ? {} : { scheduledMinimum: Math.min(scheduled, min + span) }),
            ...(forecast === undefined ? {} : { forecast: { voice: forecast } }),
            ...(latency === undefined ? {} : { metrics: { p99LatencyMs: latency } }),
          });
          expect(decision.desired).toBeGreaterThanOrEqual(min);
          expect(decision.desired).toBeLessThanOrEqual(min + span);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('is monotone in demand: more sessions never ask for fewer hosts', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 40 }),
        fc.integer({ min: 0, max: 3000 }),
        fc.integer({ min: 0, max: 3000 }),
        fc.array(record, { maxLength: 20 }),
        fc.integer({ min: 0, max: 200 }),
        (desired, a, b, history, video) => {
          const policy = policyFor();
          const [low, high] = a <= b ? [a, b] : [b, a];
          const decide = (voice: number) =>
            decideScale({ ...input(policy, desired, voice), demand: { voice, video }, history }).desired;
          expect(decide(low)).toBeLessThanOrEqual(decide(high));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('pools channels of one host type: their host fractions add up before rounding', () => {
    const policy = policyFor();
    // 120 voice sessions (2.4 hosts) and 16 video (1.6 hosts) fit on 4 pooled hosts, not ceil+ceil = 5.
    const decision = decideScale({ ...input(policy, 2, 0), demand: { voice: 120, video: 16 } });
    expect(decision.inputs.hostsForDemand).toBeCloseTo(4);
    expect(decision.desired).toBe(4);
  });

  it('holds under noise within the tolerance: no change at all, so no change of direction', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 40 }),
        fc.array(fc.double({ min: -0.1, max: 0.1, noNaN: true }), { minLength: 10, maxLength: 80 }),
        (hosts, noise) => {
          const policy = policyFor({ predictive: { enabled: false } });
          const demands = noise.map((n) => hosts * 50 * (1 + n));
          const decisions = run(policy, hosts, demands);
          expect(decisions.every((decision) => decision.direction === 'hold')).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('keeps the step limits: no period adds more than max(hosts, percent) of its starting count, nor removes more', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 0, max: 150 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 0, max: 50 }),
        fc.integer({ min: 1, max: 4 }),
        fc.array(fc.integer({ min: 0, max: 10_000 }), { minLength: 5, maxLength: 60 }),
        (upHosts, upPercent, upPeriods, downPercent, downHosts, demands) => {
          const policy = policyFor(
            {
              scaleUp: { hosts: upHosts, percent: upPercent, periodSeconds: upPeriods * 15 },
              scaleDown: { hosts: downHosts, percent: downPercent, periodSeconds: 30 },
              stabilization: { scaleDownSeconds: 0, maxScaleDownSeconds: 0 },
              predictive: { enabled: false },
            },
            { min: 1, max: 400 },
          );
          const decisions = run(policy, 1, demands);
          const counts = [1, ...decisions.map((decision) => decision.desired)];
          // Against the count one period earlier (HPA's guarantee): at most max(hosts, percent) more, or fewer.
          const upSteps = upPeriods;
          const downSteps = 2;
          for (let i = 1; i < counts.length; i++) {
            const upStart = counts[Math.max(0, i - upSteps)] as number;
            const downStart = counts[Math.max(0, i - downSteps)] as number;
            expect(counts[i]).toBeLessThanOrEqual(
              Math.max(upStart + upHosts, Math.ceil(upStart * (1 + upPercent / 100))),
            );
            expect(counts[i]).toBeGreaterThanOrEqual(
              Math.max(1, Math.min(downStart - downHosts, Math.floor(downStart * (1 - downPercent / 100)))),
            );
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('scales down only to the highest recommendation of the window, and up at once', () => {
    const policy = policyFor({ predictive: { enabled: false } });
    const demands = [...Array(4).fill(1000), ...Array(30).fill(100)];
    const decisions = run(policy, 20, demands);
    expect(decisions[0]?.desired).toBe(20);
    // 300 s = 20 syncs: the dip from 20 hosts to 2 waits until the high recommendations have left the window.
    const firstDown = decisions.findIndex((decision) => decision.direction === 'down');
    expect(firstDown).toBe(4 + 20 - 1);
    expect(decisions[firstDown]?.boundBy).not.toBe('stabilization');
    expect(decisions[firstDown - 1]?.boundBy).toBe('stabilization');
  });

  it('doubles the scale-down window for each dip that came back within the hour', () => {
    const policy = policyFor({ predictive: { enabled: false } });
    const history: ScaleRecord[] = [
      { at: NOW - 1_200_000, recommendation: 3, from: 5, to: 5, recommendedBy: 'demand' },
      { at: NOW - 1_100_000, recommendation: 5, from: 5, to: 5, recommendedBy: 'demand' },
      { at: NOW - 900_000, recommendation: 2, from: 5, to: 3, recommendedBy: 'demand' },
      { at: NOW - 800_000, recommendation: 5, from: 3, to: 5, recommendedBy: 'demand' },
      // A hold within the tolerance is not a return.
      { at: NOW - 700_000, recommendation: 4, from: 5, to: 5, recommendedBy: 'demand' },
      { at: NOW - 600_000, recommendation: 5, from: 5, to: 5, recommendedBy: 'tolerance' },
    ];
    expect(countReturns(history, NOW)).toBe(2);
    const decision = decideScale({ ...input(policy, 5, 100), history: [...watched(5), ...history] });
    expect(decision.inputs.window.down).toMatchObject({ seconds: 1200, returns: 2 });
  });

  it('assumes one returned dip until it has watched the host type for an hour', () => {
    const policy = policyFor({ predictive: { enabled: false } });
    const fresh = decideScale({ ...input(policy, 20, 100), history: [] });
    expect(fresh.inputs.window.down).toMatchObject({ seconds: 600, returns: 1, warmingUp: true });
    // The same dip, 10 minutes long, on a host type watched for an hour and one watched for 59 minutes.
    const demands = [...Array(4).fill(1000), ...Array(40).fill(100)];
    const firstDown = (decisions: ScaleDecision[]) =>
      decisions.findIndex((decision) => decision.direction === 'down');
    expect(firstDown(run(policy, 20, demands))).toBe(4 + 20 - 1);
    let current = 20;
    const young: ScaleRecord[] = [
      { at: NOW - 59 * 60_000, recommendation: 20, from: 20, to: 20, recommendedBy: 'tolerance' },
    ];
    const decisions = demands.map((voice, i) => {
      const now = NOW + i * SYNC;
      const decision = decideScale({ ...input(policy, current, voice), now, history: young });
      young.push(toRecord(decision, now));
      current = decision.desired;
      return decision;
    });
    // Still young when the 300-s window ends; an hour old (and back to 300 s) from the fifth sync on.
    expect(decisions[4 + 20 - 1]?.inputs.window.down.warmingUp).toBeUndefined();
    expect(firstDown(decisions)).toBe(4 + 20 - 1);
    expect(decisions[0]?.inputs.window.down.warmingUp).toBe(true);
  });

  it('ends a dip when the demand passes what the smaller count holds within the tolerance', () => {
    const policy = policyFor({ predictive: { enabled: false } });
    // 7 hosts, demand hovering around 6 hosts' worth (300 ± 3%): ceil() alternates 6 and 7, but 6 hosts hold
    // every tick of it within the tolerance, so the window does not keep the seventh for good.
    const noisy = Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? 291 : 309));
    const decisions = run(policy, 7, noisy);
    expect(decisions.at(-1)?.desired).toBe(6);
    expect(decisions.map((decision) => decision.holds)).toSatisfy((holds: number[]) =>
      holds.every((value) => value === 6),
    );
    // A tick that asked for more hosts keeps its whole recommendation in the window.
    const up = decideScale({ ...input(policy, 6, 400) });
    expect(up).toMatchObject({ recommendation: 8, holds: 8, desired: 8 });
  });

  it('lets a business metric add a step past its threshold and hold scale-in inside its band', () => {
    const policy = policyFor({
      metrics: [
        { name: 'mos', provisionBelow: 3.6, deprovisionAbove: 4.1, stepHosts: 2 },
        { name: 'p99LatencyMs', provisionAbove: 250 },
      ],
      predictive: { enabled: false },
    });
    const decide = (metrics: Record<string, number>, voice = 500) =>
      decideScale({ ...input(policy, 10, voice), metrics });
    expect(decide({ mos: 3.2 })).toMatchObject({ desired: 12, boundBy: 'metric' });
    expect(decide({ mos: 3.9 }, 100)).toMatchObject({ desired: 10, boundBy: 'metric' });
    expect(decide({ mos: 4.3 }, 100).desired).toBe(2);
    expect(decide({ p99LatencyMs: 400 }, 100)).toMatchObject({ desired: 11 });
    const unreported = decide({}, 100);
    expect(unreported.inputs.metrics.map((metric) => metric.verdict)).toEqual(['unreported', 'unreported']);
  });

  it('holds scale-in through the cooldown but never delays a scale-out', () => {
    const policy = policyFor({
      cooldownSeconds: 600,
      stabilization: { scaleDownSeconds: 0, maxScaleDownSeconds: 0 },
    });
    const lastScaleAt = NOW - 60_000;
    expect(decideScale({ ...input(policy, 10, 100), lastScaleAt })).toMatchObject({
      desired: 10,
      boundBy: 'cooldown',
    });
    expect(decideScale({ ...input(policy, 10, 1000), lastScaleAt }).desired).toBe(20);
    expect(decideScale({ ...input(policy, 10, 100), lastScaleAt: NOW - 600_000 }).desired).toBe(2);
  });

  it('raises the count to the scheduled minimum at once, past the step limits', () => {
    const policy = policyFor();
    expect(decideScale({ ...input(policy, 2, 0), scheduledMinimum: 30 })).toMatchObject({
      desired: 30,
      boundBy: 'schedule',
    });
  });

  it('explains itself with every input that went into the count', () => {
    const policy = policyFor();
    const decision = decideScale({
      ...input(policy, 4, 1000),
      forecast: { voice: 1500 },
      scheduledMinimum: 3,
    });
    expect(decision.inputs).toMatchObject({
      demand: { voice: 1000 },
      targets: { voice: 50, video: 10 },
      hostsForDemand: 20,
      forecast: { sessions: { voice: 1500 }, hosts: 30, leadSeconds: 120 },
      recommendation: 30,
      window: { up: { seconds: 0 }, down: { seconds: 300 } },
      stepLimits: { upTo: 8 },
      scheduledMinimum: 3,
      min: 2,
      max: 40,
    });
    expect(decision).toMatchObject({
      desired: 8,
      direction: 'up',
      boundBy: 'step-limit',
      recommendedBy: 'forecast',
    });
    expect(JSON.parse(JSON.stringify(decision.inputs))).toEqual(decision.inputs);
  });
});

describe('pickScaleIn', () => {
  const hosts = fc.uniqueArray(
    fc.record({ id: fc.stringMatching(/^[a-z0-9]{1,6}$/), sessions: fc.oneof(fc.constant(0), fc.nat(50)) }),
    { selector: (host) => host.id, maxLength: 30 },
  );

  it('never picks a host with sessions while one without is left, then the fewest, then by id', () => {
    fc.assert(
      fc.property(hosts, fc.nat(40), (fleet, n) => {
        const picked = pickScaleIn(fleet, n);
        expect(picked).toHaveLength(Math.min(n, fleet.length));
        const pickedIds = new Set(picked.map((host) => host.id));
        const left = fleet.filter((host) => !pickedIds.has(host.id));
        if (picked.some((host) => host.sessions > 0)) {
          expect(left.every((host) => host.sessions > 0)).toBe(true);
        }
        const most = Math.max(-1, ...picked.map((host) => host.sessions));
        expect(left.every((host) => host.sessions >= most)).toBe(true);
        expect(pickScaleIn([...fleet].reverse(), n)).toEqual(picked);
      }),
      { numRuns: 300 },
    );
  });
});
