import { describe, expect, it } from 'vitest';
import type { ReconcileDeps } from '../functions/reconcile/handler.ts';
import { DocumentPlanStore } from '../functions/reconcile/plan-store.ts';
import { finishStep, MAX_FOLLOW_UPS, MAX_ROLLOUT_PASSES } from '../functions/reconcile/steps/finish.ts';
import type { Plan } from '../shared/groups/model.ts';
import { MemoryDocumentStore, MemoryEventStore, MemoryHostStore } from './support/memory-stores.ts';
import { holdLease, plannedRollout, planRef, runningGroup } from './support/reconcile-fixtures.ts';

const AT = new Date('2030-01-01T00:00:00.000Z');

const GROUP = {
  name: 'demo',
  hostTypes: {
    db: { roles: ['db'], instanceType: 'r7g.large', count: 1, services: { db: { version: '13.2' } } },
  },
  dependencies: { db: [] },
  configuration: {
    rollout: { wave: '1', surgeFirst: false, convergenceTimeoutSeconds: 60 },
    drain: { waitForSessions: false, timeoutSeconds: 60, onTimeout: 'proceed' },
    disruptionBudget: '1',
    rules: [],
  },
};

/** Finishes a pass of a run holding the group; with `rollout`, the pass carried a rollout of db 14 to demo-db-1. */
async function finishAfter(plan: Plan, followUps: number, rollout = false) {
  const documents = new MemoryDocumentStore();
  const events = new MemoryEventStore();
  const hosts = new MemoryHostStore();
  const plans = new DocumentPlanStore({ documents });
  await plans.save('demo.run', plan, AT);
  const stage = { events, documents, now: () => AT };
  const { rolloutId } = await runningGroup(
    stage,
    GROUP,
    rollout ? { service: 'db', version: '14' } : undefined,
  );
  if (rolloutId) await plannedRollout(stage, rolloutId, [{ index: 0, hosts: ['demo-db-1'] }]);
  await holdLease(documents, 'demo', 'demo.run', AT);
  const deps = { documents, plans, events, hosts, now: () => AT };
  const ref = planRef({
    rolloutId: rolloutId ?? null,
    waves: plan.waves.map((wave) => wave.index),
    followUps,
  });
  return {
    ...(await finishStep(deps as unknown as ReconcileDeps, ref)),
    rolloutId: rolloutId ?? null,
    id: rolloutId,
  };
}

const launching: Plan = {
  group: 'demo',
  deferred: [],
  waves: [
    {
      index: 0,
      disrupted: [],
      awaits: [{ hostId: 'demo-db-1', stateVersion: 1 }],
      actions: [
        {
          kind: 'launch',
          hostId: 'demo-db-1',
          hostType: 'db',
          state: {
            hostId: 'demo-db-1',
            group: 'demo',
            hostType: 'db',
            stateVersion: 1,
            services: { db: { version: '13.2' } },
            config: {},
            mode: 'running',
          },
        },
      ],
    },
  ],
};

describe('finishing a pass', () => {
  it('asks for another pass after a plan that launched hosts, whose endpoints it could not know', async () => {
    expect(await finishAfter(launching, 0)).toMatchObject({ status: 'converged', again: true, followUps: 1 });
  });

  it('asks for no other pass after a plan without launches', async () => {
    expect(await finishAfter({ group: 'demo', waves: [], deferred: [] }, 0)).toMatchObject({ again: false });
  });

  it(`stops after ${MAX_FOLLOW_UPS} follow-up passes, however often hosts are launched`, async () => {
    expect(await finishAfter(launching, MAX_FOLLOW_UPS)).toMatchObject({ again: false });
  });

  it('carries a rollout on in another pass while its plan deferred hosts, instead of calling it a success', async () => {
    const waiting: Plan = {
      group: 'demo',
      waves: [],
      deferred: [{ hostId: 'demo-db-1', reason: 'booting' }],
    };
    const first = await finishAfter(waiting, 0, true);
    expect(first).toMatchObject({ status: 'running', again: true });
    expect(first.rolloutId).toBe(first.id);
    expect(await finishAfter(waiting, MAX_ROLLOUT_PASSES - 2, true)).toMatchObject({ again: true });
  });

  it(`fails the rollout after ${MAX_ROLLOUT_PASSES} passes while a host it targets does not report the target`, async () => {
    const waiting: Plan = { group: 'demo', waves: [], deferred: [] };
    expect(await finishAfter(waiting, MAX_ROLLOUT_PASSES - 1, true)).toMatchObject({
      status: 'failed',
      again: false,
      failed: true,
      cause: expect.stringContaining('demo-db-1'),
    });
  });

  it('plans again when a trigger arrived while the run held the group', async () => {
    const documents = new MemoryDocumentStore();
    const plans = new DocumentPlanStore({ documents });
    await plans.save('demo.run', { group: 'demo', waves: [], deferred: [] }, AT);
    await holdLease(documents, 'demo', 'demo.run', AT);
    // Another run asked for the group meanwhile: it took a ticket.
    await holdLease(documents, 'demo', 'other.run', AT);
    const deps = {
      documents,
      plans,
      events: new MemoryEventStore(),
      hosts: new MemoryHostStore(),
      now: () => AT,
    };
    expect(await finishStep(deps as unknown as ReconcileDeps, planRef())).toMatchObject({ again: true });
    expect((await documents.get('lease', 'demo'))?.body).toMatchObject({
      holder: 'demo.run',
      issued: 1,
      served: 0,
    });
  });
});
