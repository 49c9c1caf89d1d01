import { describe, expect, it } from 'vitest';
import { ValidationError } from '../shared/errors.ts';
import { compileGroup } from '../shared/groups/compile.ts';
import type { Action, ActualHost, DesiredHostState, Plan } from '../shared/groups/model.ts';
import { type PlanInput, planGroup } from '../shared/groups/planner.ts';
import {
  actionsOf,
  carryOut,
  configuration,
  converge,
  convergedCluster,
  input,
  NOW,
  voiceDefinition,
  voiceGroup,
  withHosts,
} from './support/planner-fixtures.ts';

const minutesAgo = (minutes: number) => new Date(Date.parse(NOW) - minutes * 60_000).toISOString();

function waveOf(plan: Plan, kind: Action['kind'], hostId: string): number {
  const found = actionsOf(plan, kind).find((action) => action.hostId === hostId);
  if (!found) throw new Error(`no ${kind} of ${hostId} in ${JSON.stringify(plan)}`);
  return found.wave;
}

function stateOf(
  plan: Plan,
  kind: 'launch' | 'assign' | 'drain' | 'update-lb',
  hostId: string,
): DesiredHostState {
  for (const wave of plan.waves) {
    for (const action of wave.actions) {
      if (action.kind === kind && action.hostId === hostId) return action.state;
    }
  }
  throw new Error(`no ${kind} of ${hostId}`);
}

function upstreamsIn(plan: Plan): string[][] {
  return plan.waves.flatMap((wave) =>
    wave.actions.flatMap((action) =>
      action.kind === 'update-lb' ? [action.state.upstreams?.media ?? []] : [],
    ),
  );
}

/** A converged voice group: db-1, media-1..4, media-lb-1, router-1..2. */
function cluster(
  counts: Partial<Record<string, number>> = {},
  overrides: Parameters<typeof configuration>[0] = {},
): PlanInput {
  return convergedCluster(voiceGroup(counts, overrides));
}

function given(state: PlanInput, change: Record<string, Partial<ActualHost>>): PlanInput {
  return withHosts(state, (host) => change[host.hostId]);
}

const rollout = (overrides: Partial<NonNullable<PlanInput['rollout']>> = {}) => ({
  id: 'r1',
  service: 'media',
  version: '2.0',
  ...overrides,
});

describe('planGroup: starting a group', () => {
  it('launches every host of a new group level by level, dependencies first', () => {
    const plan = planGroup(input(voiceGroup()));

    expect(
      plan.waves.map((wave) => wave.actions.map((action) => action.kind === 'launch' && action.hostId)),
    ).toEqual([
      ['db-1'],
      ['media-1', 'media-2', 'media-3', 'media-4'],
      ['media-lb-1', 'router-1', 'router-2'],
    ]);
    expect(plan.deferred).toEqual([]);
  });

  it('gives each launched host state version 1 with its host type services, running, and awaits it', () => {
    const plan = planGroup(input(voiceGroup()));

    expect(stateOf(plan, 'launch', 'media-2')).toEqual({
      hostId: 'media-2',
      group: 'voice',
      hostType: 'media',
      stateVersion: 1,
      services: { media: { version: '1.0', port: 7000, config: { codec: 'opus' } } },
      config: {},
      mode: 'running',
      launchedAs: '{"instanceType":"c7g.large","roles":["media"]}',
    });
    expect(plan.waves[1]?.awaits).toContainEqual({ hostId: 'media-2', stateVersion: 1 });
  });

  it('launches only the hosts a type is missing', () => {
    const state = cluster();
    const plan = planGroup({ ...state, group: voiceGroup({ media: 6 }) });

    expect(actionsOf(plan, 'launch').map((action) => action.hostId)).toEqual(['media-5', 'media-6']);
  });

  it('never reuses the id of a host that is gone but still has a desired state', () => {
    const state = cluster();
    const gone = state.desired['media-4'] as DesiredHostState;
    const plan = planGroup({
      ...state,
      hosts: state.hosts.filter((host) => host.hostId !== 'media-4'),
      desired: { ...state.desired, 'media-5': { ...gone, hostId: 'media-5' } },
    });

    expect(actionsOf(plan, 'launch').map((action) => action.hostId)).toEqual(['media-6']);
  });

  it('never reuses the id of a retired host', () => {
    const state = cluster();
    const plan = planGroup({
      ...state,
      hosts: state.hosts.filter((host) => host.hostId !== 'media-4'),
      desired: Object.fromEntries(Object.entries(state.desired).filter(([hostId]) => hostId !== 'media-4')),
      retiredHostIds: ['media-4', 'media-5'],
    });

    expect(actionsOf(plan, 'launch').map((action) => action.hostId)).toEqual(['media-6']);
  });

  it('waits for dependencies still booting before launching their dependents', () => {
    const state = cluster({ router: 0 });
    const booting = given(state, { 'media-1': { status: 'booting' } });
    const plan = planGroup({ ...booting, group: voiceGroup({ router: 2 }) });

    const launchWave = waveOf(plan, 'launch', 'router-1');
    const before = plan.waves.slice(0, launchWave).flatMap((wave) => wave.awaits);
    expect(before).toContainEqual({ hostId: 'media-1', stateVersion: 1 });
  });
});

describe('planGroup: stopping a group', () => {
  it('terminates dependents before their dependencies', () => {
    const plan = planGroup({ ...cluster(), running: false });

    const wave = (hostId: string) => waveOf(plan, 'terminate', hostId);
    expect(wave('router-1')).toBeLessThan(wave('media-1'));
    expect(wave('media-lb-1')).toBeLessThan(wave('media-1'));
    expect(wave('media-1')).toBeLessThan(wave('db-1'));
    expect(actionsOf(plan, 'terminate')).toHaveLength(8);
  });

  it('drains a host with live sessions and waits for them to end before terminating it', () => {
    const state = given(cluster(), { 'router-2': { liveSessions: 4 } });
    const plan = planGroup({ ...state, running: false });

    const drain = waveOf(plan, 'drain', 'router-2');
    const drained = plan.waves.findIndex((wave) =>
      wave.awaits.some((entry) => entry.hostId === 'router-2' && entry.drained),
    );
    expect(stateOf(plan, 'drain', 'router-2')).toMatchObject({ mode: 'draining', stateVersion: 2 });
    expect(drain).toBeLessThan(drained);
    expect(drained).toBeLessThan(waveOf(plan, 'terminate', 'router-2'));
  });

  it('holds the levels below back while a dependent is still draining', () => {
    const state = given(cluster(), {
      'router-1': { status: 'draining', liveSessions: 2, drainingSince: minutesAgo(1) },
    });
    const plan = planGroup({ ...state, running: false });

    expect(actionsOf(plan, 'terminate').map((action) => action.hostId)).toEqual(['media-lb-1', 'router-2']);
    expect(plan.deferred.map((entry) => entry.hostId)).toEqual([
      'db-1',
      'media-1',
      'media-2',
      'media-3',
      'media-4',
      'router-1',
    ]);
    expect(plan.deferred.find((entry) => entry.hostId === 'router-1')?.reason).toMatch(
      /draining: 2 live sessions/,
    );
    expect(plan.deferred.find((entry) => entry.hostId === 'db-1')?.reason).toMatch(/level 2 to stop first/);
  });
});

describe('planGroup: replacing failed hosts', () => {
  it('launches the replacement with the failed host’s state before terminating it, surge-first', () => {
    const state = cluster();
    const failed = given(
      {
        ...state,
        desired: {
          ...state.desired,
          'media-3': { ...(state.desired['media-3'] as DesiredHostState), config: { rack: 'b' } },
        },
      },
      { 'media-3': { status: 'failed' } },
    );
    const plan = planGroup(failed);

    const launch = plan.waves.flatMap((wave) => wave.actions).find((action) => action.kind === 'launch');
    expect(launch).toMatchObject({ hostId: 'media-5', replaces: 'media-3' });
    expect(stateOf(plan, 'launch', 'media-5')).toMatchObject({
      stateVersion: 1,
      mode: 'running',
      config: { rack: 'b' },
    });
    expect(waveOf(plan, 'launch', 'media-5')).toBeLessThan(waveOf(plan, 'terminate', 'media-3'));
  });

  it('terminates the failed host first when surge-first is off', () => {
    const state = given(
      cluster({}, { rollout: { wave: '1', surgeFirst: false, convergenceTimeoutSeconds: 60 } }),
      {
        'media-3': { status: 'failed' },
      },
    );
    const plan = planGroup(state);

    expect(waveOf(plan, 'terminate', 'media-3')).toBeLessThan(waveOf(plan, 'launch', 'media-5'));
  });

  it('terminates a failed host without a replacement when its type has enough hosts', () => {
    const state = given(cluster(), { 'media-3': { status: 'failed' } });
    const plan = planGroup({ ...state, group: voiceGroup({ media: 3 }) });

    expect(actionsOf(plan, 'launch')).toEqual([]);
    expect(actionsOf(plan, 'terminate').map((action) => action.hostId)).toEqual(['media-3']);
  });

  it('takes a failed member out of its load balancer', () => {
    const state = given(cluster(), { 'media-3': { status: 'failed' } });
    const plan = planGroup(state);

    expect(upstreamsIn(plan)[0]).toEqual(['media-1:7000', 'media-2:7000', 'media-4:7000']);
  });
});

describe('planGroup: scaling in', () => {
  it('removes the surplus as pickScaleIn orders it: no sessions (whatever the load), then the fewest, then by id', () => {
    const state = given(cluster(), {
      'media-1': { liveSessions: 2, load: 0.8 },
      'media-2': { liveSessions: 0, load: 0.9 },
      'media-3': { liveSessions: 5, load: 0.0 },
      'media-4': { liveSessions: 0, load: 0.1 },
    });
    const two = planGroup({ ...state, group: voiceGroup({ media: 2 }, { disruptionBudget: '3' }) });
    expect(actionsOf(two, 'terminate').map((action) => action.hostId)).toEqual(['media-2', 'media-4']);

    const three = planGroup({ ...state, group: voiceGroup({ media: 1 }, { disruptionBudget: '3' }) });
    expect(actionsOf(three, 'drain').map((action) => action.hostId)).toEqual(['media-1']);
    expect(actionsOf(three, 'terminate').map((action) => action.hostId)).toEqual([
      'media-2',
      'media-4',
      'media-1',
    ]);
  });

  it('drains surplus hosts with sessions, waits, then terminates them', () => {
    const state = given(cluster(), {
      'media-1': { liveSessions: 3 },
      'media-2': { liveSessions: 3 },
      'media-3': { liveSessions: 3 },
      'media-4': { liveSessions: 3 },
    });
    const plan = planGroup({ ...state, group: voiceGroup({ media: 3 }) });

    expect(waveOf(plan, 'drain', 'media-1')).toBeLessThan(waveOf(plan, 'terminate', 'media-1'));
    expect(upstreamsIn(plan)[0]).toEqual(['media-2:7000', 'media-3:7000', 'media-4:7000']);
  });

  it('removes the hosts of a type the group no longer defines', () => {
    const state = cluster();
    const group = voiceGroup();
    const { router: _router, ...hostTypes } = group.hostTypes;
    const plan = planGroup({
      ...state,
      group: { ...group, hostTypes, configuration: configuration({ disruptionBudget: '2' }) },
    });

    expect(actionsOf(plan, 'terminate').map((action) => action.hostId)).toEqual(['router-1', 'router-2']);
  });
});

describe('planGroup: rollouts', () => {
  it('assigns the new version with the next state version, wave by wave', () => {
    const state = cluster(
      {},
      { disruptionBudget: '2', rollout: { wave: '2', surgeFirst: true, convergenceTimeoutSeconds: 60 } },
    );
    const plan = planGroup({ ...state, rollout: rollout() });

    const assigns = plan.waves.filter((wave) => wave.actions.some((action) => action.kind === 'assign'));
    expect(
      assigns.map((wave) => wave.actions.filter((a) => a.kind === 'assign').map((a) => a.hostId)),
    ).toEqual([
      ['media-1', 'media-2'],
      ['media-3', 'media-4'],
    ]);
    expect(stateOf(plan, 'assign', 'media-1').services.media).toEqual({
      version: '2.0',
      port: 7000,
      config: { codec: 'opus' },
    });
    expect(stateOf(plan, 'assign', 'media-1').stateVersion).toBe(2);
  });

  it('never takes more hosts out of service at once than the budget, counting those already out', () => {
    const state = given(
      cluster(
        { media: 8 },
        { disruptionBudget: '3', rollout: { wave: 'all', surgeFirst: true, convergenceTimeoutSeconds: 60 } },
      ),
      {
        'router-1': { status: 'stopping' },
      },
    );
    const plan = planGroup({ ...state, rollout: rollout() });

    for (const wave of plan.waves)
      expect(wave.disrupted.filter((id) => id !== 'router-1').length).toBeLessThanOrEqual(2);
    expect(actionsOf(plan, 'assign')).toHaveLength(8);
  });

  it('defers the rollout with a reason when hosts already out use up the budget', () => {
    const state = given(cluster({}, { disruptionBudget: '1' }), { 'router-1': { status: 'stopping' } });
    const plan = planGroup({ ...state, rollout: rollout() });

    expect(actionsOf(plan, 'assign')).toEqual([]);
    expect(plan.deferred).toHaveLength(4);
    expect(plan.deferred[0]?.reason).toMatch(
      /disruption budget "1" allows 1 of 8 hosts out of service and 1 already are/,
    );
  });

  it('changes the config of hosts whose config differs, keeping the rest of it', () => {
    const state = cluster();
    const plan = planGroup({ ...state, rollout: rollout({ version: undefined, config: { ptime: '20' } }) });

    expect(stateOf(plan, 'assign', 'media-1').services.media).toEqual({
      version: '1.0',
      port: 7000,
      config: { codec: 'opus', ptime: '20' },
    });
    expect(actionsOf(plan, 'assign')).toHaveLength(4);
  });

  it('defers the hosts of the rolled-out service that are still booting, so the rollout is not over without them', () => {
    const state = given(cluster(), { 'media-3': { status: 'booting' } });
    const plan = planGroup({ ...state, rollout: rollout() });

    expect(actionsOf(plan, 'assign').map((action) => action.hostId)).not.toContain('media-3');
    expect(plan.deferred).toContainEqual({
      hostId: 'media-3',
      reason: expect.stringMatching(/^booting: rollout r1/),
    });
  });

  it('touches only the hosts the select picks', () => {
    const plan = planGroup({ ...cluster(), rollout: rollout({ select: 'ids(media-2, media-4)' }) });

    expect(actionsOf(plan, 'assign').map((action) => action.hostId)).toEqual(['media-2', 'media-4']);
  });

  it('keeps a percentage pointing at the hosts already changed on the next reconcile', () => {
    const state = given(cluster(), { 'media-1': { load: 0.9 }, 'media-2': { load: 0.8 } });
    const first = planGroup({ ...state, rollout: rollout({ select: '50%' }) });
    expect(actionsOf(first, 'assign').map((action) => action.hostId)).toEqual(['media-3', 'media-4']);

    const after = withHosts(carryOut({ ...state, rollout: rollout({ select: '50%' }) }, first), (host) =>
      host.hostType === 'media'
        ? { load: host.hostId === 'media-3' || host.hostId === 'media-4' ? 0.9 : 0.1 }
        : undefined,
    );
    expect(planGroup(after).waves).toEqual([]);
  });

  it('updates the hosts of a lower dependency level first', () => {
    const group = voiceGroup();
    const shared = {
      ...group,
      serviceHosts: { ...group.serviceHosts, lb: ['media-lb'] },
    };
    const state = cluster(
      { 'media-lb': 2 },
      { disruptionBudget: '4', rollout: { wave: 'all', surgeFirst: true, convergenceTimeoutSeconds: 60 } },
    );
    const plan = planGroup({
      ...state,
      group: { ...state.group, serviceHosts: shared.serviceHosts },
      rollout: rollout({ service: 'lb' }),
    });

    expect(actionsOf(plan, 'assign').map((action) => action.hostId)).toEqual(['media-lb-1', 'media-lb-2']);
    const mixed = planGroup({
      ...state,
      group: { ...state.group, serviceHosts: { ...state.group.serviceHosts, media: ['media', 'router'] } },
      rollout: rollout({ select: 'all' }),
    });
    const routerWave = waveOf(mixed, 'assign', 'router-1');
    for (const id of ['media-1', 'media-2', 'media-3', 'media-4'])
      expect(waveOf(mixed, 'assign', id)).toBeLessThan(routerWave);
  });

  it('notifies the hosts of dependent services before the service changes', () => {
    const plan = planGroup({ ...cluster(), rollout: rollout() });

    const notify = plan.waves.flatMap((wave) => wave.actions).find((action) => action.kind === 'notify');
    expect(notify).toEqual({
      kind: 'notify',
      hostIds: ['router-1', 'router-2'],
      service: 'media',
      reason: 'media changes to 2.0 (rollout r1)',
    });
    expect(waveOf(plan, 'notify', 'router-1')).toBeLessThanOrEqual(waveOf(plan, 'assign', 'media-1'));
  });

  it('rejects a rollout of a service no host type runs', () => {
    expect(() => planGroup({ ...cluster(), rollout: rollout({ service: 'fax' }) })).toThrow(ValidationError);
  });
});

describe('planGroup: live sessions', () => {
  it('drains a host with live sessions, waits for them to end, then assigns', () => {
    const state = given(cluster(), { 'media-2': { liveSessions: 7 } });
    const plan = planGroup({ ...state, rollout: rollout() });

    const drain = waveOf(plan, 'drain', 'media-2');
    const wait = plan.waves[drain + 1];
    expect(wait?.actions).toEqual([]);
    expect(wait?.awaits).toEqual([{ hostId: 'media-2', stateVersion: 2, drained: true }]);
    expect(waveOf(plan, 'assign', 'media-2')).toBe(drain + 2);
    expect(stateOf(plan, 'assign', 'media-2')).toMatchObject({ stateVersion: 3, mode: 'running' });
  });

  it('defers a host still draining within its timeout', () => {
    const state = given(cluster(), {
      'media-2': { status: 'draining', liveSessions: 7, drainingSince: minutesAgo(2) },
    });
    const plan = planGroup({ ...state, rollout: rollout() });

    expect(actionsOf(plan).filter((action) => action.hostId === 'media-2')).toEqual([]);
    expect(plan.deferred).toEqual([
      {
        hostId: 'media-2',
        reason: 'rollout r1: draining: 7 live sessions, drain times out at 2026-11-28T12:08:00.000Z',
      },
    ]);
  });

  it('goes ahead with a host whose drain timed out when the policy says proceed', () => {
    const state = given(cluster(), {
      'media-2': { status: 'draining', liveSessions: 7, drainingSince: minutesAgo(11) },
    });
    const plan = planGroup({ ...state, rollout: rollout() });

    expect(actionsOf(plan, 'drain')).toEqual([]);
    expect(stateOf(plan, 'assign', 'media-2').services.media?.version).toBe('2.0');
  });

  it('defers a host whose drain timed out when the policy says fail', () => {
    const state = given(
      cluster({}, { drain: { waitForSessions: true, timeoutSeconds: 600, onTimeout: 'fail' } }),
      {
        'media-2': { status: 'draining', liveSessions: 7, drainingSince: minutesAgo(11) },
      },
    );
    const plan = planGroup({ ...state, rollout: rollout() });

    expect(plan.deferred).toEqual([
      {
        hostId: 'media-2',
        reason: 'rollout r1: drain timed out after 600s with 7 live sessions (onTimeout: fail)',
      },
    ]);
  });

  it('drains but does not wait for sessions when the policy does not wait', () => {
    const state = given(
      cluster({}, { drain: { waitForSessions: false, timeoutSeconds: 600, onTimeout: 'fail' } }),
      {
        'media-2': { liveSessions: 7 },
      },
    );
    const plan = planGroup({ ...state, rollout: rollout() });

    expect(waveOf(plan, 'assign', 'media-2')).toBe(waveOf(plan, 'drain', 'media-2') + 1);
    expect(plan.waves.flatMap((wave) => wave.awaits).some((entry) => entry.drained)).toBe(false);
  });

  it('puts a host drained for work no longer wanted back into service, then back into its load balancer', () => {
    const state = cluster();
    const drained = {
      ...(state.desired['media-2'] as DesiredHostState),
      stateVersion: 2,
      mode: 'draining' as const,
    };
    const lb = state.desired['media-lb-1'] as DesiredHostState;
    const withoutIt = { ...lb, upstreams: { media: ['media-1:7000', 'media-3:7000', 'media-4:7000'] } };
    const plan = planGroup({
      ...given(state, {
        'media-2': { status: 'draining', appliedStateVersion: 2, assignedStateVersion: 2, liveSessions: 1 },
      }),
      desired: { ...state.desired, 'media-2': drained, 'media-lb-1': withoutIt },
    });

    expect(plan.waves.map((wave) => wave.actions)).toEqual([
      [{ kind: 'assign', hostId: 'media-2', state: { ...drained, stateVersion: 3, mode: 'running' } }],
      [
        {
          kind: 'update-lb',
          hostId: 'media-lb-1',
          state: {
            ...withoutIt,
            stateVersion: lb.stateVersion + 1,
            upstreams: { media: ['media-1:7000', 'media-2:7000', 'media-3:7000', 'media-4:7000'] },
          },
        },
      ],
    ]);
  });

  it('puts back into service a drained host the rollout already changed', () => {
    const state = cluster();
    const before = state.desired['media-2'] as DesiredHostState;
    const changed = {
      ...before,
      stateVersion: 3,
      mode: 'draining' as const,
      services: {
        media: { ...(before.services.media as DesiredHostState['services'][string]), version: '2.0' },
      },
    };
    const plan = planGroup({
      ...given(state, { 'media-2': { status: 'draining', appliedStateVersion: 3, assignedStateVersion: 3 } }),
      desired: { ...state.desired, 'media-2': changed },
      rollout: rollout({ select: 'ids(media-2)' }),
    });

    expect(plan.waves[0]?.actions.filter((action) => action.kind === 'assign')).toEqual([
      { kind: 'assign', hostId: 'media-2', state: { ...changed, stateVersion: 4, mode: 'running' } },
    ]);
    expect(actionsOf(plan, 'assign')).toHaveLength(1);
  });
});

describe('planGroup: load balancers', () => {
  it('takes members out before altering them and puts them back after', () => {
    const plan = planGroup({ ...cluster(), rollout: rollout({ select: 'ids(media-1)' }) });

    expect(plan.waves.map((wave) => wave.actions.map((action) => action.kind))).toEqual([
      ['notify', 'update-lb'],
      ['assign'],
      ['update-lb'],
    ]);
    expect(upstreamsIn(plan)).toEqual([
      ['media-2:7000', 'media-3:7000', 'media-4:7000'],
      ['media-1:7000', 'media-2:7000', 'media-3:7000', 'media-4:7000'],
    ]);
  });

  it('leaves a load balancer alone when its upstreams would not change, whatever their order', () => {
    const state = cluster();
    const lb = state.desired['media-lb-1'] as DesiredHostState;
    const shuffled = { ...lb, upstreams: { media: [...(lb.upstreams?.media ?? [])].reverse() } };
    const plan = planGroup({ ...state, desired: { ...state.desired, 'media-lb-1': shuffled } });

    expect(plan.waves).toEqual([]);
  });

  it('corrects a load balancer whose upstreams are stale', () => {
    const state = cluster();
    const lb = state.desired['media-lb-1'] as DesiredHostState;
    const stale = { ...lb, upstreams: { media: ['media-1:7000', 'old-9:7000'] } };
    const plan = planGroup({ ...state, desired: { ...state.desired, 'media-lb-1': stale } });

    expect(plan.waves).toHaveLength(1);
    expect(stateOf(plan, 'update-lb', 'media-lb-1')).toMatchObject({
      stateVersion: lb.stateVersion + 1,
      upstreams: { media: ['media-1:7000', 'media-2:7000', 'media-3:7000', 'media-4:7000'] },
    });
  });

  it('launches a replacement load balancer with the current upstreams', () => {
    const state = given(cluster(), { 'media-lb-1': { status: 'failed' }, 'media-4': { status: 'failed' } });
    const plan = planGroup(state);

    expect(stateOf(plan, 'launch', 'media-lb-2')).toMatchObject({
      stateVersion: 1,
      upstreams: { media: ['media-1:7000', 'media-2:7000', 'media-3:7000'] },
    });
    expect(actionsOf(plan, 'update-lb')).toEqual([]);
  });
});

describe('planGroup: convergence', () => {
  it('plans nothing for a converged cluster', () => {
    const plan = planGroup(cluster());

    expect(plan).toEqual({ group: 'voice', waves: [], deferred: [] });
  });

  it('plans nothing once a rollout’s plan has been carried out', () => {
    const state = { ...given(cluster(), { 'media-3': { liveSessions: 2 } }), rollout: rollout() };
    const plan = planGroup(state);

    expect(planGroup(carryOut(state, plan)).waves).toEqual([]);
  });

  it('plans the same whatever order the hosts and desired states come in', () => {
    const state = {
      ...given(cluster(), { 'media-3': { liveSessions: 2 }, 'db-1': { status: 'failed' } }),
      rollout: rollout(),
    };
    const reversed = {
      ...state,
      hosts: [...state.hosts].reverse(),
      desired: Object.fromEntries(Object.entries(state.desired).reverse()),
    };

    expect(planGroup(reversed)).toEqual(planGroup(state));
  });

  it('rejects a time that is not a time', () => {
    expect(() => planGroup({ ...cluster(), now: 'yesterday' })).toThrow(ValidationError);
  });
});

describe('planGroup: replacing a host type launched otherwise (replaceHostType)', () => {
  const bigger = (state: PlanInput): PlanInput => {
    const definition = voiceDefinition();
    const media = definition.hostTypes.media as NonNullable<(typeof definition.hostTypes)['media']>;
    media.instanceType = 'c7g.xlarge';
    return { ...state, group: compileGroup(definition, 2) };
  };
  const replace = { id: 'r9', service: 'media', replaceHostType: 'media' };

  it('launches each replacement with the old host state, then terminates the old host once it is up', () => {
    const state = bigger(cluster());
    const plan = planGroup({ ...state, rollout: replace });

    const launched = actionsOf(plan, 'launch').map((action) => action.hostId);
    expect(launched).toEqual(['media-5', 'media-6', 'media-7', 'media-8']);
    const launch = plan.waves.flatMap((wave) => wave.actions).find((action) => action.kind === 'launch');
    expect(launch).toMatchObject({ replaces: 'media-1' });
    // One host at a time (wave and budget "max(1, 25%)"): the next launch waits for the last old host to go.
    expect(waveOf(plan, 'terminate', 'media-1')).toBeLessThan(waveOf(plan, 'launch', 'media-6'));
    for (const wave of plan.waves) expect(wave.disrupted.length).toBeLessThanOrEqual(1);
    expect(stateOf(plan, 'launch', 'media-5')).toMatchObject({
      services: state.desired['media-1']?.services,
      launchedAs: '{"instanceType":"c7g.xlarge","roles":["media"]}',
    });
    // Surge-first: the new host is awaited before the old one goes.
    expect(waveOf(plan, 'launch', 'media-5')).toBeLessThan(waveOf(plan, 'terminate', 'media-1'));
    expect(plan.waves[waveOf(plan, 'launch', 'media-5')]?.awaits).toContainEqual({
      hostId: 'media-5',
      stateVersion: 1,
    });
  });

  it('replaces within the disruption budget and comes to an end: every host launched as defined now', () => {
    let state: PlanInput = { ...bigger(cluster()), rollout: replace };
    const terminatedPerPlan: number[] = [];
    for (let round = 0; round < 12; round += 1) {
      const plan = planGroup(state);
      if (plan.waves.length === 0) break;
      for (const wave of plan.waves) expect(wave.disrupted.length).toBeLessThanOrEqual(1);
      terminatedPerPlan.push(actionsOf(plan, 'terminate').length);
      state = carryOut(state, plan);
    }
    const media = state.hosts.filter((host) => host.hostType === 'media');
    expect(media).toHaveLength(4);
    expect(media.map((host) => host.hostId).sort()).toEqual(['media-5', 'media-6', 'media-7', 'media-8']);
    for (const host of media)
      expect(state.desired[host.hostId]?.launchedAs).toBe('{"instanceType":"c7g.xlarge","roles":["media"]}');
    expect(planGroup(state).waves).toEqual([]);
  });

  it('drains an old host with live sessions before it goes', () => {
    const state = given(bigger(cluster()), {
      'media-1': { liveSessions: 3 },
      'media-2': { liveSessions: 0 },
    });
    const plan = planGroup({ ...state, rollout: replace });

    const successor = plan.waves
      .flatMap((wave) => wave.actions)
      .find((action) => action.kind === 'launch' && action.replaces === 'media-1');
    expect(successor?.kind).toBe('launch');
    expect(waveOf(plan, 'launch', successor?.kind === 'launch' ? successor.hostId : '')).toBeLessThan(
      waveOf(plan, 'drain', 'media-1'),
    );
    expect(waveOf(plan, 'drain', 'media-1')).toBeLessThan(waveOf(plan, 'terminate', 'media-1'));
  });

  it('when a replacement was interrupted, scale-in lets the host launched otherwise go', () => {
    const state = bigger(cluster());
    const once = carryOut(state, {
      group: 'voice',
      deferred: [],
      waves: [planGroup({ ...state, rollout: replace }).waves[0] as Plan['waves'][number]],
    });
    const plan = planGroup(once);

    expect(actionsOf(plan, 'terminate').map((action) => action.hostId)).toEqual(['media-1']);
  });
});

describe('planGroup: service operations', () => {
  it('stops a service: its spec is marked stopped, in waves within the budget', () => {
    const plan = planGroup({ ...cluster(), rollout: { id: 'r2', service: 'media', operation: 'stop' } });

    expect(stateOf(plan, 'assign', 'media-1').services.media).toMatchObject({
      version: '1.0',
      stopped: true,
    });
    for (const wave of plan.waves) expect(wave.disrupted.length).toBeLessThanOrEqual(1);
  });

  it('starts a stopped service again and plans nothing for hosts where it runs', () => {
    const stopped = converge({
      ...cluster(),
      rollout: { id: 'r2', service: 'media', operation: 'stop' },
    }).state;
    expect(stopped.desired['media-4']?.services.media?.stopped).toBe(true);
    const plan = planGroup({ ...stopped, rollout: { id: 'r3', service: 'media', operation: 'start' } });

    expect(stateOf(plan, 'assign', 'media-1').services.media).not.toHaveProperty('stopped');
    const started = converge({
      ...stopped,
      rollout: { id: 'r3', service: 'media', operation: 'start' },
    }).state;
    expect(
      planGroup({ ...started, rollout: { id: 'r3', service: 'media', operation: 'start' } }).waves,
    ).toEqual([]);
  });

  it('removes a service from the selected hosts only', () => {
    const plan = planGroup({
      ...cluster(),
      rollout: { id: 'r4', service: 'media', operation: 'remove', select: 'ids(media-2)' },
    });

    expect(stateOf(plan, 'assign', 'media-2').services).toEqual({});
    expect(actionsOf(plan, 'assign').map((action) => action.hostId)).toEqual(['media-2']);
  });

  it('drains a host with live sessions before stopping its service', () => {
    const state = given(cluster(), { 'media-1': { liveSessions: 2 } });
    const plan = planGroup({
      ...state,
      rollout: { id: 'r5', service: 'media', operation: 'stop', select: 'ids(media-1)' },
    });

    expect(waveOf(plan, 'drain', 'media-1')).toBeLessThan(waveOf(plan, 'assign', 'media-1'));
  });
});

describe('planGroup: scale-in', () => {
  it('prefers hosts without sessions and drains the others it must remove', () => {
    const state = given(cluster(), {
      'media-1': { liveSessions: 5 },
      'media-2': { liveSessions: 0 },
      'media-3': { liveSessions: 4 },
      'media-4': { liveSessions: 6 },
    });
    const oneLess = planGroup({ ...state, group: voiceGroup({ media: 3 }) });
    expect(actionsOf(oneLess, 'terminate').map((action) => action.hostId)).toEqual(['media-2']);
    expect(actionsOf(oneLess, 'drain')).toEqual([]);

    const twoLess = planGroup({ ...state, group: voiceGroup({ media: 2 }) });
    expect(actionsOf(twoLess, 'terminate').map((action) => action.hostId)).toContain('media-2');
    const drained = actionsOf(twoLess, 'drain').map((action) => action.hostId);
    expect(drained).toHaveLength(1);
    expect(waveOf(twoLess, 'drain', drained[0] as string)).toBeLessThan(
      waveOf(twoLess, 'terminate', drained[0] as string),
    );
  });
});
