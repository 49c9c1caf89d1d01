/*
 * Setting the reconcile's stage through the real write paths: groups defined and started through the group
 * service, rollouts requested and moved through their commands, the group's lease held by a run.
 */

import type { PlanRef } from '../../functions/reconcile/steps/types.ts';
import { GroupService } from '../../shared/groups/group-service.ts';
import type { RolloutRequest } from '../../shared/groups/model.ts';
import type { DocumentStore } from '../../shared/groups/ports.ts';
import type { EventStore } from '../../shared/ports.ts';
import { claim } from '../../shared/reconcile/lease.ts';
import { updateLease } from '../../shared/reconcile/lease-store.ts';
import { commandRollout } from '../../shared/rollouts/rollout-service.ts';
import { RecordingReconcileStarter } from './memory-stores.ts';

export interface StageDeps {
  events: EventStore;
  documents: DocumentStore;
  now: () => Date;
}

/** Defines the group from its JSON definition and starts it; requests the rollout when one is given. */
export async function runningGroup(
  deps: StageDeps,
  definition: unknown,
  rollout?: RolloutRequest,
): Promise<{ service: GroupService; rolloutId?: string }> {
  let ids = 0;
  const service = new GroupService({
    ...deps,
    reconcile: new RecordingReconcileStarter(),
    newId: () => `s${++ids}`,
  });
  const name = (definition as { name: string }).name;
  await service.defineGroup(name, JSON.stringify(definition), 'json');
  await service.startGroup(name);
  if (!rollout) return { service };
  const requested = await service.requestRollout(name, rollout);
  return { service, rolloutId: requested.rollout.id };
}

/** The rollout as a reconcile run left it: planned with these waves, the first `started` of them applied. */
export async function plannedRollout(
  deps: StageDeps,
  rolloutId: string,
  waves: { index: number; hosts: string[] }[],
  started = 0,
): Promise<void> {
  const at = deps.now();
  const targets = [...new Set(waves.flatMap((wave) => wave.hosts))];
  await commandRollout(deps, rolloutId, { type: 'Plan', waves, targets, run: 'test-run', at });
  for (const wave of waves.slice(0, started))
    await commandRollout(deps, rolloutId, { type: 'StartWave', index: wave.index, at });
}

/** The run holds the group's lease (for a long while: a test's clock may run ahead). */
export async function holdLease(
  documents: DocumentStore,
  group: string,
  run: string,
  now: Date,
): Promise<void> {
  await updateLease(documents, group, now, (lease) => claim(lease, run, now, 24 * 3600));
}

/** A pass's reference to its plan: run `demo.run` holding group `demo`, no rollout, no waves; `overrides` say what differs. */
export function planRef(overrides: Partial<PlanRef> = {}): PlanRef {
  return {
    planId: 'demo.run',
    group: 'demo',
    run: 'demo.run',
    lease: 'held',
    ticket: null,
    revert: false,
    rolloutId: null,
    waves: [],
    deadlineSeconds: 60,
    pollSeconds: 1,
    followUps: 0,
    ...overrides,
  };
}
