import { describe, expect, it } from 'vitest';
import { decidePost, type LastPost } from '../agent/change-detector.ts';
import { DEFAULT_BANDS, splitMetrics } from '../shared/metrics.ts';
import { MachineState, type MachineStateInput } from '../shared/schemas.ts';

const HOUR = 3_600_000;
const options = { heartbeatMs: HOUR, thresholds: DEFAULT_BANDS };

function state(overrides: { load?: number; voice?: number; version?: string } = {}): MachineState {
  const input: MachineStateInput = {
    status: 'running',
    group: 'edge',
    hostType: 'router',
    roles: ['call-router'],
    ips: { internal: '10.0.0.5' },
    capacity: { sessions: 500 },
    config: {},
    software: { 'call-router': { version: overrides.version ?? '1.0.0' } },
    operational: { load: overrides.load ?? 0.3, sessions: { voice: overrides.voice ?? 20 } },
  };
  return MachineState.parse(input);
}

function posted(at: number, observed = state()): LastPost {
  return { tracked: splitMetrics(observed, DEFAULT_BANDS).tracked, postedAt: at };
}

describe('decidePost', () => {
  it('posts the first observation', () => {
    expect(decidePost(state(), undefined, 0, options)).toEqual({ post: true, reason: 'first' });
  });

  it('does not post a load or session wiggle inside the same band', () => {
    const last = posted(1_000);
    expect(decidePost(state({ load: 0.41, voice: 37 }), last, 2_000, options)).toEqual({ post: false });
  });

  it('posts when load crosses into another band', () => {
    const decision = decidePost(state({ load: 0.55 }), posted(1_000), 2_000, options);
    expect(decision).toEqual({ post: true, reason: 'changed', changes: 1 });
  });

  it('posts when sessions of a channel drop to zero (the band draining waits for)', () => {
    const decision = decidePost(state({ voice: 0 }), posted(1_000), 2_000, options);
    expect(decision).toEqual({ post: true, reason: 'changed', changes: 1 });
  });

  it('counts every changed tracked path', () => {
    const decision = decidePost(state({ load: 0.9, version: '1.1.0' }), posted(1_000), 2_000, options);
    expect(decision).toEqual({ post: true, reason: 'changed', changes: 2 });
  });

  it('posts a heartbeat once the interval elapsed without change', () => {
    const last = posted(1_000);
    expect(decidePost(state(), last, 1_000 + HOUR - 1, options)).toEqual({ post: false });
    expect(decidePost(state(), last, 1_000 + HOUR, options)).toEqual({ post: true, reason: 'heartbeat' });
  });

  it('treats a state never successfully posted as due for a heartbeat', () => {
    const last: LastPost = { ...posted(0), postedAt: undefined };
    expect(decidePost(state(), last, 5, options)).toEqual({ post: true, reason: 'heartbeat' });
  });

  it('prefers "changed" over "heartbeat" when both apply', () => {
    const decision = decidePost(state({ load: 0.99 }), posted(0), 10 * HOUR, options);
    expect(decision).toMatchObject({ post: true, reason: 'changed' });
  });
});
