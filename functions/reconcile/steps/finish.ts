import { groupRecorder, succeededEvent } from '../../../shared/groups/group-service.ts';
import type { Rollout } from '../../../shared/groups/model.ts';
import { appendOnce, FINAL_ROLLOUT_STATUSES, updateRollout } from './common.ts';
import type { PlanRef, ReconcileDeps } from './types.ts';

/**
 * Every wave converged: the rollout (if any) succeeded, and a rollout of the whole group becomes the group's
 * definition (see GroupService.recordRolloutSucceeded). A rollout already ended otherwise (rolled back,
 * aborted) is left as it is, and so is the definition.
 */
export async function finishStep(
  deps: ReconcileDeps,
  ref: PlanRef,
): Promise<{ status: Rollout['status'] | 'converged'; definitionVersion?: number }> {
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
