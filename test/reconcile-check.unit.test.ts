import { describe, expect, it } from 'vitest';
import { createReconcileHandler } from '../functions/reconcile/handler.ts';
import { DocumentPlanStore } from '../functions/reconcile/plan-store.ts';
import type { CheckResult } from '../functions/reconcile/steps/types.ts';
import type { HostProvisioner } from '../shared/groups/host-provisioning.ts';
import type { DesiredHostState, Plan, Rollout } from '../shared/groups/model.ts';
import type { FleetPort, StatePublisher } from '../shared/groups/ports.ts';
import type { HostRecord } from '../shared/ports.ts';
import { commandRollout } from '../shared/rollouts/rollout-service.ts';
import type { ReportedHostStatus } from '../shared/schemas.ts';
import { machineState, registeredHost } from './support/fixtures.ts';
import { MemoryDocumentStore, MemoryEventStore, MemoryHostStore } from './support/memory-stores.ts';
import { holdLease, plannedRollout, planRef, runningGroup } from './support/reconcile-fixtures.ts';

/*
 * The Check step on its own: given hosts reporting this or that, when the wave is checked at some time,
 * then it is converged, waiting, failed or timed out.
 */

const APPLIED_AT = Date.parse('2026-11-28T10:00:00.000Z');
const DEADLINE_SECONDS = 300;
const DEADLINE = new Date(APPLIED_AT + DEADLINE_SECONDS * 1000).toISOString();

const unusedFleet: FleetPort = {
  launch: () => Promise.reject(new Error('not expected')),
  terminate: () => Promise.reject(new Error('not expected')),
  reboot: () => Promise.reject(new Error('not expected')),
  describe: async () => [],
};
const unusedProvisioner: HostProvisioner = {
  prepare: () => Promise.reject(new Error('not expected')),
  bind: () => Promise.reject(new Error('not expected')),
  revoke: () => Promise.reject(new Error('not expected')),
};
const unusedPublisher: StatePublisher = {
  ensureInbox: () => Promise.reject(new Error('not expected')),
  removeInbox: () => Promise.reject(new Error('not expected')),
  publish: () => Promise.reject(new Error('not expected')),
  broadcast: () => Promise.reject(new Error('not expected')),
};

interface HostReport {
  hostId: string;
  status?: ReportedHostStatus;
  applied: number;
  sessions?: number;
  /** The call-router version it reports running; default: the rollout's 1.5.0 once it applied its state. */
  running?: string;
}

/** The rollout's target state of a host, as the wave's Apply assigned it. */
function stateOf(hostId: string, stateVersion: number): DesiredHostState {
  return {
    hostId,
    group: 'demo',
    hostType: 'call-router',
    stateVersion,
    services: { 'call-router': { version: '1.5.0' } },
    config: {},
    mode: 'running',
  };
}

/** What each host was told by the wave's Apply (state versions as the wave awaits them). */
const ASSIGNED: Record<string, number> = { h1: 2, h2: 3 };

function host(report: HostReport): HostRecord {
  const status = report.status ?? 'running';
  const stateVersion = ASSIGNED[report.hostId] ?? 1;
  const running = report.running ?? (report.applied >= stateVersion ? '1.5.0' : '1.4.0');
  const observed = machineState({
    status,
    appliedStateVersion: report.applied,
    software: { 'call-router': { version: running, status: 'running' } },
  });
  return registeredHost({
    hostId: report.hostId,
    status,
    version: 6,
    // Reported after it was told (the StateAssigned at version 5).
    observedVersion: 6,
    observed: {
      ...observed,
      operational: { dataRefs: [], bands: { load: 0, sessions: { voice: 0, sms: 0, mms: 0, video: 0 } } },
    },
    metrics: { load: 0, sessions: { voice: report.sessions ?? 0, sms: 0, mms: 0, video: 0 } },
    assigned: {
      state: stateOf(report.hostId, stateVersion),
      assignedAt: new Date(APPLIED_AT).toISOString(),
      by: { run: 'demo.run', rolloutId: 'r-1', reason: 'rollout' },
      version: 5,
    },
  });
}

type RolloutStage = 'running' | 'paused' | 'reverting';

async function given(
  reports: HostReport[],
  options: { onTimeout?: 'proceed' | 'fail'; rollout?: RolloutStage } = {},
) {
  const documents = new MemoryDocumentStore();
  const events = new MemoryEventStore();
  const hosts = new MemoryHostStore();
  for (const report of reports) await hosts.create(host(report));
  const at = new Date(APPLIED_AT);
  const stage = { events, documents, now: () => at };
  const { rolloutId } = await runningGroup(
    stage,
    {
      name: 'demo',
      hostTypes: {
        'call-router': {
          roles: ['call-router'],
          instanceType: 'c7g.large',
          count: 2,
          services: { 'call-router': { version: '1.4.0' } },
        },
      },
      dependencies: { 'call-router': [] },
      configuration: {
        rollout: { wave: '1', surgeFirst: false, convergenceTimeoutSeconds: DEADLINE_SECONDS },
        drain: { waitForSessions: true, timeoutSeconds: 60, onTimeout: options.onTimeout ?? 'proceed' },
        disruptionBudget: '1',
        rules: [],
      },
    },
    options.rollout ? { service: 'call-router', version: '1.5.0' } : undefined,
  );
  if (rolloutId) {
    await plannedRollout(stage, rolloutId, [{ index: 0, hosts: ['h1', 'h2'] }], 1);
    if (options.rollout === 'paused') await commandRollout(stage, rolloutId, { type: 'Pause', at });
    if (options.rollout === 'reverting') await commandRollout(stage, rolloutId, { type: 'Abort', at });
  }
  await holdLease(documents, 'demo', 'demo.run', at);
  const plans = new DocumentPlanStore({ documents });
  const plan: Plan = {
    group: 'demo',
    waves: [
      {
        index: 0,
        actions: [
          { kind: 'assign', hostId: 'h1', state: stateOf('h1', 2) },
          { kind: 'assign', hostId: 'h2', state: stateOf('h2', 3) },
        ],
        disrupted: ['h1', 'h2'],
        awaits: [
          { hostId: 'h1', stateVersion: 2 },
          { hostId: 'h2', stateVersion: 3, drained: true },
        ],
      },
    ],
    deferred: [],
  };
  await plans.save('demo.run', plan, at);
  const ref = planRef({
    rolloutId: rolloutId ?? null,
    waves: [0],
    deadlineSeconds: DEADLINE_SECONDS,
    pollSeconds: 5,
  });
  return {
    documents,
    plans,
    hosts,
    rolloutId,
    async checkAt(secondsAfterApply: number, checkWindowMs = 0): Promise<CheckResult> {
      const handler = createReconcileHandler({
        events,
        hosts,
        documents,
        fleet: unusedFleet,
        provisioner: unusedProvisioner,
        publisher: unusedPublisher,
        plans,
        settings: { pollSeconds: 5, checkWindowMs, heartbeatCoalesceSeconds: 0 },
        now: () => new Date(APPLIED_AT + secondsAfterApply * 1000),
      });
      return (await handler({ step: 'check', plan: ref, wave: 0, deadline: DEADLINE })) as CheckResult;
    },
  };
}

describe('check step', () => {
  it('converges when every awaited host reports its state and drained hosts have no sessions', async () => {
    const wave = await given([
      { hostId: 'h1', applied: 2 },
      { hostId: 'h2', applied: 4 },
    ]);

    expect((await wave.checkAt(10)).status).toBe('converged');
    expect([...(await wave.plans.converged('demo.run'))]).toEqual([0]);
  });

  it('waits while a host has not reported its state yet', async () => {
    const wave = await given([
      { hostId: 'h1', applied: 1 },
      { hostId: 'h2', applied: 3 },
    ]);

    expect(await wave.checkAt(10)).toMatchObject({ status: 'waiting', detail: 'waiting for h1' });
  });

  it('waits for a host that took its state but is still booting', async () => {
    const wave = await given([
      { hostId: 'h1', applied: 2, status: 'booting' },
      { hostId: 'h2', applied: 3 },
    ]);

    expect(await wave.checkAt(10)).toMatchObject({ status: 'waiting', detail: 'waiting for h1' });
  });

  it('looks again within its window, so a host that reports meanwhile converges the wave in one check', async () => {
    const wave = await given([
      { hostId: 'h1', applied: 1 },
      { hostId: 'h2', applied: 3 },
    ]);
    setTimeout(() => void wave.hosts.save({ ...host({ hostId: 'h1', applied: 2 }), version: 7 }), 250);

    expect((await wave.checkAt(10, 5_000)).status).toBe('converged');
  });

  it('fails the wave when a host goes failed', async () => {
    const wave = await given([
      { hostId: 'h1', applied: 1, status: 'failed' },
      { hostId: 'h2', applied: 3 },
    ]);

    expect(await wave.checkAt(10)).toMatchObject({ status: 'failed', detail: 'wave 0: hosts failed: h1' });
  });

  it('times out a wave that has not converged by its deadline', async () => {
    const wave = await given([
      { hostId: 'h1', applied: 1 },
      { hostId: 'h2', applied: 3 },
    ]);

    expect((await wave.checkAt(DEADLINE_SECONDS + 1)).status).toBe('timed-out');
  });

  it('waits for a drained host to lose its sessions until the drain timeout', async () => {
    const wave = await given([
      { hostId: 'h1', applied: 2 },
      { hostId: 'h2', applied: 3, sessions: 4 },
    ]);

    expect((await wave.checkAt(59)).status).toBe('waiting');
  });

  it('goes ahead after the drain timeout when the policy says proceed', async () => {
    const wave = await given([
      { hostId: 'h1', applied: 2 },
      { hostId: 'h2', applied: 3, sessions: 4 },
    ]);

    expect((await wave.checkAt(61)).status).toBe('converged');
  });

  it('fails the wave after the drain timeout when the policy says fail', async () => {
    const wave = await given(
      [
        { hostId: 'h1', applied: 2 },
        { hostId: 'h2', applied: 3, sessions: 4 },
      ],
      { onTimeout: 'fail' },
    );

    expect(await wave.checkAt(61)).toMatchObject({ status: 'failed', detail: 'wave 0: hosts failed: h2' });
  });

  it('holds a paused rollout past its deadline and moves the deadline on', async () => {
    const wave = await given([{ hostId: 'h1', applied: 1 }], { rollout: 'paused' });

    const result = await wave.checkAt(DEADLINE_SECONDS + 100);

    expect(result.status).toBe('waiting');
    expect(Date.parse(result.deadline)).toBe(APPLIED_AT + (2 * DEADLINE_SECONDS + 100) * 1000);
  });

  it('reports an aborted rollout (now reverting) as aborted', async () => {
    const wave = await given([{ hostId: 'h1', applied: 2 }], { rollout: 'reverting' });

    expect(await wave.checkAt(10)).toMatchObject({ status: 'aborted', detail: 'aborted' });
  });

  it('records a converged wave of a rollout as done and its hosts as done', async () => {
    const wave = await given(
      [
        { hostId: 'h1', applied: 2 },
        { hostId: 'h2', applied: 3 },
      ],
      { rollout: 'running' },
    );

    await wave.checkAt(10);

    const rollout = (await wave.documents.get<Rollout>('rollout', wave.rolloutId as string))?.body;
    expect(rollout?.waves[0]?.status).toBe('done');
    expect(rollout?.hosts).toEqual({ done: ['h1', 'h2'], pending: [], failed: [] });
  });

  it('lists a host done only when it reports the target, however the wave converged', async () => {
    // h2 applied its state (the wave converges) but still runs the old version: not done.
    const wave = await given(
      [
        { hostId: 'h1', applied: 2 },
        { hostId: 'h2', applied: 3, running: '1.4.0' },
      ],
      { rollout: 'running' },
    );

    expect((await wave.checkAt(10)).status).toBe('converged');

    const rollout = (await wave.documents.get<Rollout>('rollout', wave.rolloutId as string))?.body;
    expect(rollout?.hosts).toEqual({ done: ['h1'], pending: ['h2'], failed: [] });
  });

  it('stops a run that no longer holds the group: another run took it over', async () => {
    const wave = await given([{ hostId: 'h1', applied: 2 }]);
    await wave.documents.put(
      'lease',
      'demo',
      { holder: 'other.run', until: new Date(APPLIED_AT + 3_600_000).toISOString(), issued: 0, served: 0 },
      (await wave.documents.get('lease', 'demo'))?.version ?? 0,
      new Date(APPLIED_AT),
    );

    expect(await wave.checkAt(10)).toMatchObject({
      status: 'failed',
      detail: 'run demo.run no longer holds group demo',
    });
  });
});
