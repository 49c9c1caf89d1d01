import { raiseAlarm } from '../../../shared/groups/group-service.ts';
import { isFinalRolloutStatus } from '../../../shared/groups/group-state.ts';
import type { Rollout } from '../../../shared/groups/model.ts';
import { abandon } from '../../../shared/reconcile/lease.ts';
import { updateLease } from '../../../shared/reconcile/lease-store.ts';
import { commandRollout } from '../../../shared/rollouts/rollout-service.ts';
import { loadRollout, stillHolds } from './common.ts';
import type { PlanRef, ReconcileDeps } from './types.ts';

export interface Failure {
  Error?: string;
  Cause?: string;
}

export interface RollbackResult {
  status: Rollout['status'] | 'failed' | 'superseded';
  /** Plan again in this run: the revert goes through waves, drains and the budget like the rollout did. */
  again: boolean;
  followUps: number;
  rolloutId: string | null;
}

/**
 * A wave failed, or the rollout was aborted. The rollout turns to reverting and the run plans again: the
 * revert is a rollout back to the group's version over the hosts it touched, through the same waves, drain and
 * disruption budget (so no host is left draining and none is changed all at once). A revert that itself fails
 * fails the rollout. Without a rollout there is nothing to revert: an alarm tells an operator the group did
 * not converge, and the run lets the group go.
 */
export async function rollbackStep(
  deps: ReconcileDeps,
  ref: PlanRef,
  failure: Failure | undefined,
): Promise<RollbackResult> {
  const now = deps.now();
  const cause = failure?.Cause || failure?.Error || 'the reconcile run failed';
  const over = (status: RollbackResult['status']): RollbackResult => ({
    status,
    again: false,
    followUps: ref.followUps,
    rolloutId: null,
  });
  if (!(await stillHolds(deps, ref))) return over('superseded');
  const rollout = await loadRollout(deps.documents, ref.rolloutId);
  const alarm = (name: string, detail: string, rolloutId?: string) =>
    raiseAlarm(deps, ref.group, {
      alarmId: `${ref.planId}.alarm`,
      alarm: name,
      detail,
      ...(rolloutId ? { rolloutId } : {}),
      ...(rollout && rollout.hosts.failed.length > 0 ? { hostIds: rollout.hosts.failed } : {}),
    });
  if (!rollout || isFinalRolloutStatus(rollout.status)) {
    await alarm('reconcile-failed', cause);
    await letGo(deps, ref);
    return over('failed');
  }
  if (ref.revert) {
    const failed = await commandRollout(deps, rollout.id, {
      type: 'Fail',
      reason: `the revert did not converge: ${cause}`,
      at: now,
    });
    await alarm(
      'rollout-revert-failed',
      `rollout ${rollout.id} of ${rollout.service}: the revert did not converge: ${cause}`,
      rollout.id,
    );
    await letGo(deps, ref);
    return over(failed.status);
  }
  const aborted = rollout.status === 'reverting' && rollout.revert?.outcome === 'aborted';
  const reverting = aborted
    ? rollout
    : await commandRollout(deps, rollout.id, { type: 'Revert', reason: cause, at: now });
  await alarm(
    aborted ? 'rollout-aborted' : 'rollout-failed',
    `rollout ${rollout.id} of ${rollout.service}: ${aborted ? 'aborted by an operator' : cause}; reverting the hosts it touched`,
    rollout.id,
  );
  return { status: reverting.status, again: true, followUps: ref.followUps + 1, rolloutId: rollout.id };
}

async function letGo(deps: ReconcileDeps, ref: PlanRef): Promise<void> {
  await updateLease(deps.documents, ref.group, deps.now(), (lease) => ({ lease: abandon(lease, ref.run) }));
}
