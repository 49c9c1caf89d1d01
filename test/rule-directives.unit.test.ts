import { describe, expect, it } from 'vitest';
import { RESTART_REASON } from '../shared/fold.ts';
import type { ActualHost, DesiredHostState, Plan } from '../shared/groups/model.ts';
import { bendHosts, directivesOf, ruleActions } from '../shared/reconcile/rule-directives.ts';
import type { Firing } from '../shared/rules/types.ts';

const state = (hostId: string, stateVersion = 3): DesiredHostState => ({
  hostId,
  group: 'demo',
  hostType: 'media',
  stateVersion,
  services: { media: { version: '2.1.0' } },
  config: {},
  mode: 'running',
});

const host = (hostId: string, status: ActualHost['status'] = 'running'): ActualHost => ({
  hostId,
  hostType: 'media',
  status,
  software: { media: '2.1.0' },
  appliedStateVersion: 3,
  assignedStateVersion: 3,
  liveSessions: 0,
  load: 0,
});

const firing = (hostId: string, ...kinds: Firing['actions'][number]['kind'][]): Firing => ({
  ruleId: `rule[${kinds.join('+')}]`,
  hostId,
  actions: kinds.map((kind) => ({ kind }) as Firing['actions'][number]),
  because: 'test',
});

const emptyPlan: Plan = { group: 'demo', waves: [], deferred: [] };

describe('rule directives', () => {
  it('shows a host to replace as failed, and one a rule takes out of its load balancer as unhealthy', () => {
    const directives = directivesOf([firing('m1', 'replace'), firing('m2', 'remove-from-lb')]);
    const bent = bendHosts([host('m1'), host('m2'), host('m3')], directives);
    expect(bent.map((h) => [h.hostId, h.status, h.unhealthy])).toEqual([
      ['m1', 'failed', undefined],
      ['m2', 'running', true],
      ['m3', 'running', undefined],
    ]);
  });

  it('restarts a dead service with a fresh state version of the same state, recorded as a restart', () => {
    const directives = directivesOf([firing('m1', 'restart-service')]);
    const { actions, reasons } = ruleActions(emptyPlan, directives, { m1: state('m1') });
    expect(actions).toEqual([{ kind: 'assign', hostId: 'm1', state: state('m1', 4) }]);
    expect(reasons.get('m1')).toBe(RESTART_REASON);
  });

  it('leaves a host the plan already changes to the plan, and never restarts a host it replaces', () => {
    const directives = directivesOf([firing('m1', 'restart-service'), firing('m2', 'replace', 'reboot')]);
    const plan: Plan = {
      group: 'demo',
      waves: [
        {
          index: 0,
          actions: [{ kind: 'assign', hostId: 'm1', state: state('m1', 4) }],
          disrupted: [],
          awaits: [],
        },
      ],
      deferred: [],
    };
    expect(ruleActions(plan, directives, { m1: state('m1'), m2: state('m2') }).actions).toEqual([]);
  });

  it('reboots and drains only what the rules name, each once', () => {
    const directives = directivesOf([
      firing('m1', 'reboot'),
      firing('m1', 'restart-service'),
      firing('m2', 'drain'),
    ]);
    const { actions } = ruleActions(emptyPlan, directives, { m1: state('m1'), m2: state('m2') });
    expect(actions).toEqual([
      { kind: 'reboot', hostId: 'm1' },
      { kind: 'drain', hostId: 'm2', state: { ...state('m2', 4), mode: 'draining' } },
    ]);
  });

  it('acts on nothing for group firings and alarms', () => {
    const directives = directivesOf([
      { ruleId: 'default:boot-missing-hosts', actions: [{ kind: 'boot' }], because: 'x' },
      { ruleId: 'rule[0]', hostId: 'm1', actions: [{ kind: 'alarm', text: 'hot' }], because: 'x' },
    ]);
    expect(ruleActions(emptyPlan, directives, { m1: state('m1') }).actions).toEqual([]);
    expect(directives.causes.size).toBe(0);
  });
});
