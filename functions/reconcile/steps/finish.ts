import type { Rollout } from '../../../shared/groups/model.ts';
import { appendOnce, FINAL_ROLLOUT_STATUSES, updateRollout } from './common.ts';
import type { PlanRef, ReconcileDeps } from './types.ts';

/** Every wave converged: the rollout (if any) succeeded. A rollout already ended is left as it is. */
export async function finishStep(
  deps: ReconcileDeps,
  ref: PlanRef,
): Promise<{ status: Rollout['status'] | 'converged' }> {
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
  if (updated?.status === 'succeeded') {
    await appendOnce(
      deps.events,
      ref.group,
      [
        {
          type: 'RolloutStatusChanged',
          eventId: `${rolloutId}.succeeded`,
          data: { rolloutId, status: 'succeeded', at: now.toISOString() },
        },
      ],
      now,
    );
  }
  return { status: updated?.status ?? 'succeeded' };
}
