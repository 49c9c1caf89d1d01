import { groupRecorder, succeededEvent } from '../../../shared/groups/group-service.ts';
import type { Rollout } from '../../../shared/groups/model.ts';
import { appendOnce, FINAL_ROLLOUT_STATUSES, updateRollout } from './common.ts';
import type { PlanRef, ReconcileDeps } from './types.ts';

/** Passes one run may add after its first: enough for launched hosts to join their load balancers. */
export const MAX_FOLLOW_UPS = 2;

export interface FinishResult {
  status: Rollout['status'] | 'converged';
  definitionVersion?: number;
  /** Plan again in this run: the plan launched hosts, whose endpoints were unknown when it was made. */
  again: boolean;
  followUps: number;
}

/**
 * A plan is made before its launches happen, so what depends on the new hosts' endpoints (their load
 * balancers' upstreams) can only be planned once they report them: a plan that launched asks for one more pass.
 */
async function followUp(
  deps: ReconcileDeps,
  ref: PlanRef,
): Promise<Pick<FinishResult, 'again' | 'followUps'>> {
  const plan = await deps.plans.load(ref.planId);
  const launched = plan.waves.some((wave) => wave.actions.some((action) => action.kind === 'launch'));
  return { again: launched && ref.followUps < MAX_FOLLOW_UPS, followUps: ref.followUps + 1 };
}

/**
 * Every wave converged: the rollout (if any) succeeded, and a rollout of the whole group becomes the group's
 * definition (see GroupService.recordRolloutSucceeded). A rollout already ended otherwise (rolled back,
 * aborted) is left as it is, and so is the definition.
 */
export async function finishStep(deps: ReconcileDeps, ref: PlanRef): Promise<FinishResult> {
  const next = await followUp(deps, ref);
  return { ...(await finishRollout(deps, ref)), ...next };
}

async function finishRollout(
  deps: ReconcileDeps,
  ref: PlanRef,
): Promise<Omit<FinishResult, 'again' | 'followUps'>> {
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
