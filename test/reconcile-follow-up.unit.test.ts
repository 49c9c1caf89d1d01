import { describe, expect, it } from 'vitest';
import type { ReconcileDeps } from '../functions/reconcile/handler.ts';
import { DocumentPlanStore } from '../functions/reconcile/plan-store.ts';
import { finishStep, MAX_FOLLOW_UPS, MAX_ROLLOUT_PASSES } from '../functions/reconcile/steps/finish.ts';
import type { PlanRef } from '../functions/reconcile/steps/types.ts';
import type { Plan } from '../shared/groups/model.ts';
import { MemoryDocumentStore, MemoryEventStore, MemoryHostStore } from './support/memory-stores.ts';

const AT = new Date('2030-01-01T00:00:00.000Z');

async function finishAfter(plan: Plan, followUps: number, rolloutId: string | null = null) {
  const documents = new MemoryDocumentStore();
  const plans = new DocumentPlanStore({ documents });
  await plans.save('demo.run', plan, AT);
  const deps = {
    documents,
    plans,
    events: new MemoryEventStore(),
    hosts: new MemoryHostStore(),
    now: () => AT,
  };
  const ref: PlanRef = {
    planId: 'demo.run',
    group: 'demo',
    rolloutId,
    waves: plan.waves.map((wave) => wave.index),
    deadlineSeconds: 60,
    pollSeconds: 1,
    followUps,
  };
  return finishStep(deps as unknown as ReconcileDeps, ref);
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
    expect(await finishAfter(waiting, 0, 'r-1')).toMatchObject({
      status: 'running',
      again: true,
      rolloutId: 'r-1',
    });
    expect(await finishAfter(waiting, MAX_ROLLOUT_PASSES - 1, 'r-1')).toMatchObject({ again: true });
  });
});
