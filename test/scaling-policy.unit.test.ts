import { describe, expect, it } from 'vitest';
import { ValidationError } from '../shared/errors.ts';
import { checkScalingPolicy, compileScalingPolicy, type ScaledHostType } from '../shared/scaling/policy.ts';

const MEDIA: ScaledHostType = { min: 2, max: 20, channels: ['voice', 'video'] };
const BOOT = { bootSeconds: 90 };

function problemsOf(value: unknown, hostType: ScaledHostType = MEDIA) {
  return checkScalingPolicy(value, hostType, BOOT).problems;
}

describe('scaling policy', () => {
  it('fills the documented defaults (HPA where HPA has them; the lead is the boot time)', () => {
    const policy = compileScalingPolicy({ targets: { voice: 50 } }, MEDIA, BOOT);
    expect(policy).toMatchObject({
      min: 2,
      max: 20,
      targets: { voice: 50 },
      tolerance: 0.1,
      stabilization: { scaleUpSeconds: 0, scaleDownSeconds: 300, maxScaleDownSeconds: 1800 },
      scaleUp: { hosts: 4, percent: 100, periodSeconds: 15 },
      scaleDown: { percent: 100, periodSeconds: 15 },
      cooldownSeconds: 0,
      schedule: [],
      predictive: { enabled: true, lookbackWeeks: 2, leadSeconds: 90, trendSeconds: 600 },
    });
    expect(policy.scaleDown.hosts).toBeUndefined();
  });

  it('compiles both kinds of business metric and a schedule', () => {
    const policy = compileScalingPolicy(
      {
        targets: { voice: 50, load: 0.7 },
        metrics: [
          { name: 'p99LatencyMs', provisionAbove: 250, deprovisionBelow: 150 },
          { name: 'mos', provisionBelow: 3.6, deprovisionAbove: 4.1, stepHosts: 2 },
        ],
        schedule: [
          { cron: '30 17 24 12 *', timeZone: 'Europe/Paris', minCapacity: 12, durationMinutes: 300 },
        ],
      },
      MEDIA,
      BOOT,
    );
    expect(policy.metrics).toEqual([
      { name: 'p99LatencyMs', worse: 'higher', provision: 250, deprovision: 150, stepHosts: 1 },
      { name: 'mos', worse: 'lower', provision: 3.6, deprovision: 4.1, stepHosts: 2 },
    ]);
    expect(policy.targetLoad).toBe(0.7);
    expect(policy.schedule[0]?.expression.hours).toEqual(new Set([17]));
  });

  it('rejects a deprovision threshold on the wrong side of the provision threshold, naming the field', () => {
    expect(
      problemsOf({ metrics: [{ name: 'p99LatencyMs', provisionAbove: 4.0, deprovisionBelow: 4.5 }] }),
    ).toEqual([{ path: 'scaling.metrics[0].deprovisionBelow', message: '4.5 is above provisionAbove 4' }]);
    expect(problemsOf({ metrics: [{ name: 'mos', provisionBelow: 3.6, deprovisionAbove: 3.2 }] })).toEqual([
      { path: 'scaling.metrics[0].deprovisionAbove', message: '3.2 is below provisionBelow 3.6' },
    ]);
  });

  it('rejects equal thresholds, mixed directions, a missing provision threshold and a repeated metric', () => {
    const problems = problemsOf({
      targets: { voice: 50 },
      metrics: [
        { name: 'a', provisionAbove: 5, deprovisionBelow: 5 },
        { name: 'b', provisionAbove: 5, provisionBelow: 3 },
        { name: 'c', deprovisionAbove: 4 },
        { name: 'a', provisionAbove: 9 },
      ],
    });
    expect(problems.map((problem) => problem.path)).toEqual([
      'scaling.metrics[0].deprovisionBelow',
      'scaling.metrics[1]',
      'scaling.metrics[2].provisionBelow',
      'scaling.metrics[3].name',
    ]);
    expect(problems[0]?.message).toMatch(/equals provisionAbove: leave a band/);
    expect(problems[2]?.message).toBe('is required with deprovisionAbove');
  });

  it('rejects a target for a channel the host type does not serve', () => {
    expect(problemsOf({ targets: { sms: 100 } })).toEqual([
      {
        path: 'scaling.targets.sms',
        message: 'the host type does not serve sms (its channels: voice, video)',
      },
    ]);
  });

  it('rejects a bad cron naming the field and its position, an unknown zone, a minimum above max', () => {
    const problems = problemsOf({
      targets: { voice: 50 },
      schedule: [
        { cron: '0 25 * * *', minCapacity: 3, durationMinutes: 60 },
        { cron: '0 8 * * *', timeZone: 'Mars/Olympus', minCapacity: 30, durationMinutes: 60 },
      ],
    });
    expect(problems).toEqual([
      {
        path: 'scaling.schedule[0].cron',
        message: 'cron "0 25 * * *": hour field (position 2): 25 is out of range 0-23',
      },
      { path: 'scaling.schedule[1].timeZone', message: 'unknown time zone "Mars/Olympus"' },
      { path: 'scaling.schedule[1].minCapacity', message: '30 is above max 20' },
    ]);
  });

  it('rejects shapes with the definition schema\'s wording ("is required", "expected …", unknown fields)', () => {
    const problems = problemsOf({
      targets: { voice: -1, load: 1.5 },
      tolerance: 1,
      schedule: [{ cron: '* * * * *', durationMinutes: 60 }],
      surprise: true,
    });
    expect(problems).toEqual(
      expect.arrayContaining([
        { path: 'scaling.targets.voice', message: 'expected a positive number of sessions per host' },
        { path: 'scaling.targets.load', message: 'expected a load between 0 and 1' },
        { path: 'scaling.tolerance', message: 'expected a tolerance between 0 and 1' },
        { path: 'scaling.schedule[0].minCapacity', message: 'is required' },
        { path: 'scaling', message: 'unknown field "surprise"' },
      ]),
    );
  });

  it('rejects contradictions between windows, steps and the host type', () => {
    expect(problemsOf({ targets: { voice: 50 } }, { min: 2, channels: ['voice'] })).toEqual([
      { path: 'scaling', message: 'the host type needs a max to scale up to' },
    ]);
    expect(problemsOf({})).toEqual([
      { path: 'scaling', message: 'nothing to scale on: give targets, metrics or a schedule' },
    ]);
    expect(
      problemsOf({
        targets: { voice: 50 },
        stabilization: { scaleDownSeconds: 600, maxScaleDownSeconds: 300 },
        scaleUp: { hosts: 0, percent: 0 },
      }).map((problem) => problem.path),
    ).toEqual(['scaling.stabilization.maxScaleDownSeconds', 'scaling.scaleUp']);
  });

  it('throws one ValidationError listing every problem (details.errors), as PUT /groups reports them', () => {
    let caught: unknown;
    try {
      compileScalingPolicy({ targets: { sms: 1 }, tolerance: -1 }, MEDIA, {
        ...BOOT,
        at: 'hostTypes.media.scaling',
      });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ValidationError);
    const error = caught as ValidationError;
    expect(error.message).toMatch(
      /^scaling policy is invalid: hostTypes\.media\.scaling\.tolerance: expected/,
    );
    expect(error.details.errors).toEqual([
      { path: 'hostTypes.media.scaling.tolerance', message: 'expected a tolerance between 0 and 1' },
    ]);
  });
});
