import { describe, expect, it } from 'vitest';
import { loopbackAddressFor, mulberry32, SimulatedHost } from '../agent/facts/simulated.ts';
import { bandsOf, DEFAULT_BANDS } from '../shared/metrics.ts';
import { MachineState } from '../shared/schemas.ts';

function host(seed: number, clock: () => number, bootMs = 3_000) {
  return new SimulatedHost({
    hostId: 'sim-1',
    group: 'edge',
    hostType: 'router',
    roles: ['call-router'],
    services: { 'call-router': '1.0.0', metrics: '0.3.1' },
    random: mulberry32(seed),
    clock,
    bootMs,
    capacitySessions: 300,
  });
}

describe('SimulatedHost', () => {
  it('boots first, with services starting and no traffic, then runs', async () => {
    let now = 0;
    const sim = host(1, () => now);
    const booting = MachineState.parse(await sim.collect());
    expect(booting.status).toBe('booting');
    expect(booting.software['call-router']).toEqual({ version: '1.0.0', status: 'starting' });
    expect(booting.operational.sessions).toEqual({ voice: 0, sms: 0, mms: 0, video: 0 });
    now = 3_000;
    const running = MachineState.parse(await sim.collect());
    expect(running.status).toBe('running');
    expect(running.software).toEqual({
      'call-router': { version: '1.0.0', status: 'running' },
      metrics: { version: '0.3.1', status: 'running' },
    });
    expect(running.ips.internal).toBe(loopbackAddressFor('sim-1'));
    expect(running.ips.internal).toMatch(/^127\.0\.0\.(\d+)$/);
  });

  it('stays within the schema for 1000 steps and mostly wiggles inside a band', async () => {
    for (const seed of [1, 2, 3, 42, 1234]) {
      const sim = host(seed, () => 10_000, 0);
      let previous: string | undefined;
      let crossings = 0;
      for (let step = 0; step < 1_000; step += 1) {
        const state = MachineState.parse(await sim.collect());
        expect(state.operational.load).toBeGreaterThanOrEqual(0);
        expect(state.operational.load).toBeLessThanOrEqual(1);
        for (const count of Object.values(state.operational.sessions)) {
          expect(count).toBeLessThanOrEqual(state.capacity.sessions);
        }
        const bands = JSON.stringify(bandsOf(state, DEFAULT_BANDS));
        if (previous !== undefined && bands !== previous) crossings += 1;
        previous = bands;
      }
      // occasionally, not constantly: a post every few minutes at a 5 s poll, not every poll
      expect(crossings).toBeGreaterThan(0);
      expect(crossings).toBeLessThan(200);
    }
  });

  it('is reproducible from its seed', async () => {
    const a = host(7, () => 10_000, 0);
    const b = host(7, () => 10_000, 0);
    const c = host(8, () => 10_000, 0);
    const run = async (sim: SimulatedHost) => {
      const out = [];
      for (let i = 0; i < 20; i += 1) out.push((await sim.collect()).operational);
      return out;
    };
    const [ra, rb, rc] = [await run(a), await run(b), await run(c)];
    expect(ra).toEqual(rb);
    expect(ra).not.toEqual(rc);
  });
});
