import { describe, expect, it } from 'vitest';
import {
  fleetfoldPolicy,
  hpaBaseline,
  loadTraces,
  SIM_START,
  simulate,
  type Trace,
} from '../bench/autoscale.ts';

const TINY: Trace = {
  name: 'tiny',
  stepSeconds: 60,
  targetPerHost: 50,
  capacityPerHost: 60,
  bootSeconds: 120,
  min: 1,
  max: 10,
  demand: [50, 200, 200, 200, 200, 50, 50, 50],
};

describe('autoscale bench simulator', () => {
  it('counts overload while new hosts boot, host-hours of booting and draining hosts, and flaps', () => {
    // A fixed policy: 4 hosts from minute 1, back to 1 from minute 5, up to 2 at minute 7.
    const policy = (now: number) => {
      const minute = (now - SIM_START) / 60_000;
      return minute >= 7 ? 2 : minute >= 5 ? 1 : minute >= 1 ? 4 : 1;
    };
    const outcome = simulate(TINY, policy);
    // Demand 200 > 1 × 60 from minute 1 until the three new hosts serve at minute 3.
    expect(outcome.overloadMinutes).toBe(2);
    // 1 host for 8 min, 3 booting/ready from minute 1 to 5, then draining for 2 min, 1 more from minute 7.
    expect(outcome.hostHours).toBeCloseTo((8 + 3 * 4 + 3 * 2 + 1) / 60, 9);
    expect(outcome.flaps).toBe(2);
  });

  it('runs the HPA baseline with its defaults: at once up, max(4, 100%) per 15 s, down after 300 s', () => {
    const decide = hpaBaseline({ ...TINY, max: 100 });
    expect(decide(SIM_START, 2000)).toBe(5); // from 1: max(1 + 4, 2 × 1)
    expect(decide(SIM_START + 15_000, 2000)).toBe(10); // max(5 + 4, 2 × 5)
    expect(decide(SIM_START + 30_000, 2000)).toBe(20);
    expect(decide(SIM_START + 45_000, 2000)).toBe(40);
    expect(decide(SIM_START + 60_000, 2000)).toBe(40);
    expect(decide(SIM_START + 75_000, 100)).toBe(40);
    expect(decide(SIM_START + 60_000 + 300_000, 100)).toBe(2);
    // Within the tolerance nothing moves: 2 hosts at 105 sessions is a ratio of 1.05.
    expect(decide(SIM_START + 400_000, 105)).toBe(2);
  });

  it("meets the issue's targets on every trace: fewer overload minutes at ≤ 1.05x host-hours, no flap on the oscillation", () => {
    for (const trace of loadTraces()) {
      const ours = simulate(trace, fleetfoldPolicy(trace));
      const baseline = simulate(trace, hpaBaseline(trace));
      const bothZero = ours.overloadMinutes === 0 && baseline.overloadMinutes === 0;
      expect(bothZero || ours.overloadMinutes < baseline.overloadMinutes, trace.name).toBe(true);
      expect(ours.hostHours, trace.name).toBeLessThanOrEqual(baseline.hostHours * 1.05);
      if (trace.schedule !== undefined) expect(ours.overloadMinutes, trace.name).toBe(0);
      if (trace.name === 'oscillation') {
        expect(ours.flaps).toBe(0);
        expect(baseline.flaps).toBeGreaterThan(10);
      }
    }
  });
});
