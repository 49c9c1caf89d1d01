import { describe, expect, it } from 'vitest';
import { toActualHost } from '../functions/reconcile/steps/common.ts';
import { planIdFor } from '../functions/reconcile/steps/plan.ts';
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
  const assigned = (state: DesiredHostState) => ({
    state,
    assignedAt: '2026-11-25T10:00:00.000Z',
    by: { reason: 'rollout' },
    version: 7,
  });

  it('dates a drain from when the draining state was assigned, not from the latest snapshot', () => {
    const record = registeredHost({
      status: 'draining',
      observedAt: '2026-11-25T10:09:00.000Z',
      assigned: assigned(draining),
    });
    const host = toActualHost(record);
    expect(host.drainingSince).toBe('2026-11-25T10:00:00.000Z');
    expect(host.assignedStateVersion).toBe(4);
  });

  it('has no drain start for a host that is not asked to drain', () => {
    const host = toActualHost(registeredHost({ assigned: assigned({ ...draining, mode: 'running' }) }));
    expect(host.drainingSince).toBeUndefined();
  });
});

describe('plan ids', () => {
  const now = new Date('2026-11-25T10:00:00.000Z');

  it('are the same for a retried Plan step of one run, so the run follows the plan it made', () => {
    const start = '2026-11-25T09:59:58.000Z';
    expect(planIdFor('demo', 'group-demo-start-2', now, 0, start)).toBe(
      planIdFor('demo', 'group-demo-start-2', new Date(now.getTime() + 5_000), 0, start),
    );
  });

  it('differ for a later run under the same name, and for each further pass of a run', () => {
    const first = planIdFor('demo', 'group-demo-start-2', now, 0, '2026-11-25T09:00:00.000Z');
    expect(planIdFor('demo', 'group-demo-start-2', now, 0, '2026-11-25T10:00:00.000Z')).not.toBe(first);
    expect(planIdFor('demo', 'group-demo-start-2', now, 1, '2026-11-25T09:00:00.000Z')).not.toBe(first);
  });
});
