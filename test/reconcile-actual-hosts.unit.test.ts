import { describe, expect, it } from 'vitest';
import { toActualHost } from '../functions/reconcile/steps/common.ts';
import type { DesiredHostState } from '../shared/groups/model.ts';
import { registeredHost } from './support/fixtures.ts';

const draining: DesiredHostState = {
  hostId: 'cr-1',
  group: 'demo',
  hostType: 'call-router',
  stateVersion: 4,
  services: { 'call-router': { version: '1.4.0' } },
  config: {},
  mode: 'draining',
};

describe('the planner’s view of a host', () => {
  it('dates a drain from when the draining state was assigned, not from the latest snapshot', () => {
    const record = registeredHost({ status: 'draining', observedAt: '2026-11-25T10:09:00.000Z' });
    const host = toActualHost(record, draining, '2026-11-25T10:00:00.000Z');
    expect(host.drainingSince).toBe('2026-11-25T10:00:00.000Z');
    expect(host.assignedStateVersion).toBe(4);
  });

  it('has no drain start for a host that is not asked to drain', () => {
    const host = toActualHost(registeredHost(), { ...draining, mode: 'running' }, '2026-11-25T10:00:00.000Z');
    expect(host.drainingSince).toBeUndefined();
  });
});
