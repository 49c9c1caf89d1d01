import { groupRecorder, succeededEvent } from '../../../shared/groups/group-service.ts';
import type { Rollout } from '../../../shared/groups/model.ts';
import { appendOnce, FINAL_ROLLOUT_STATUSES, updateRollout } from './common.ts';
import type { PlanRef, ReconcileDeps } from './types.ts';

/** Passes one run may add after its first because it launched: enough for new hosts to join their balancers. */
export const MAX_FOLLOW_UPS = 2;
/** Passes one run may add while its rollout waits for hosts still coming up (each after a poll interval). */
export const MAX_ROLLOUT_PASSES = 30;

export interface FinishResult {
  status: Rollout['status'] | 'converged';
  definitionVersion?: number;
  /** Plan again in this run (see followUp). */
  again: boolean;
  followUps: number;
  /** The rollout the next pass carries on with; null when it is over (or there is none). */
  rolloutId: string | null;
}

/**
 * A plan is made before its launches happen, so what depends on the new hosts' endpoints (their load
 * balancers' upstreams) can only be planned once they report them: a plan that launched asks for one more
 * pass. A rollout whose plan deferred hosts (still booting, still draining) is not over: it goes on in another
 * pass, after a poll interval, instead of being called a success without them.
 */
async function followUp(
  deps: ReconcileDeps,
  ref: PlanRef,
): Promise<Pick<FinishResult, 'again' | 'followUps' | 'rolloutId'>> {
  const plan = await deps.plans.load(ref.planId);
  const launched = plan.waves.some((wave) => wave.actions.some((action) => action.kind === 'launch'));
  const unfinished = ref.rolloutId !== null && plan.deferred.length > 0 && ref.followUps < MAX_ROLLOUT_PASSES;
  return {
    again: unfinished || (launched && ref.followUps < MAX_FOLLOW_UPS),
    followUps: ref.followUps + 1,
    rolloutId: unfinished ? ref.rolloutId : null,
  };
}

export async function finishStep(deps: ReconcileDeps, ref: PlanRef): Promise<FinishResult> {
  const next = await followUp(deps, ref);
  if (next.rolloutId) return { status: 'running', ...next };
  return { ...(await finishRollout(deps, ref)), ...next };
}

async function finishRollout(
  deps: ReconcileDeps,
  ref: PlanRef,
): Promise<Omit<FinishResult, 'again' | 'followUps' | 'rolloutId'>> {
  if (!ref.rolloutId) return { status: 'converged' };
  const now = deps.now();
  const rolloutId = ref.rolloutId;
  const updated = await updateRollout(deps.documents, rolloutId, now, (rollout) => {
    if (FINAL_ROLLOUT_STATUSES.has(rollout.status)) return undefined;
    const pending = new Set(rollout.hosts.pending);
    return {
      ...rollout,
      status: 'succeeded',
      hosts: {
        done: [...new Set([...rollout.hosts.done, ...pending])].sort(),
        pending: [],
        failed: rollout.hosts.failed,
      },
    };
  });
  if (updated?.status !== 'succeeded') return { status: updated?.status ?? 'succeeded' };
  // Runs again on a retry: the recorder decides on the stream, so it records (and adopts) once.
  const recorded = await groupRecorder(deps).recordRolloutSucceeded(updated);
  // A stream that does not name the rollout active (recorded already) still gets its status event once.
  if (!recorded.recorded)
    await appendOnce(deps.events, ref.group, [succeededEvent(rolloutId, now.toISOString())], now);
  return {
    status: 'succeeded',
    ...(recorded.definitionVersion === undefined ? {} : { definitionVersion: recorded.definitionVersion }),
  };
}
