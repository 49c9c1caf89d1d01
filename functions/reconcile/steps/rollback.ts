import { NotFoundError } from '../../../shared/errors.ts';
import type { NewEvent } from '../../../shared/events.ts';
import type { GroupEvent } from '../../../shared/groups/events.ts';
import type { DesiredHostState, Rollout, ServiceSpec } from '../../../shared/groups/model.ts';
import {
  appendOnce,
  FINAL_ROLLOUT_STATUSES,
  type GroupDocument,
  loadGroup,
  mapLimited,
  updateRollout,
  writeDesired,
} from './common.ts';
import type { PlanRef, ReconcileDeps } from './types.ts';

export interface Failure {
  Error?: string;
  Cause?: string;
}

function wasAborted(rollout: Rollout, failure: Failure | undefined): boolean {
  return rollout.status === 'aborted' || failure?.Cause === 'aborted' || failure?.Error === 'RolloutAborted';
}

/**
 * A wave failed (or the rollout was aborted): the hosts the rollout changed so far get their previous
 * service version back, the rollout is marked rolled-back (or aborted) and an alarm is raised. Without a
 * rollout there is nothing to revert; the alarm tells an operator the group did not converge.
 */
export async function rollbackStep(
  deps: ReconcileDeps,
  ref: PlanRef,
  failure: Failure | undefined,
): Promise<{ status: Rollout['status'] | 'failed'; reverted: string[] }> {
  const now = deps.now();
  const cause = failure?.Cause || failure?.Error || 'the reconcile run failed';
  if (!ref.rolloutId) {
    await raiseAlarm(deps, ref, 'reconcile-failed', cause, undefined, []);
    return { status: 'failed', reverted: [] };
  }
  const stored = await deps.documents.get<Rollout>('rollout', ref.rolloutId);
  if (!stored)
    throw new NotFoundError(`rollout ${ref.rolloutId} does not exist`, { rolloutId: ref.rolloutId });
  const rollout = stored.body;
  const group = await loadGroup(deps.documents, ref.group);

  const touched = new Set([...rollout.hosts.done, ...rollout.hosts.failed]);
  for (const wave of rollout.waves)
    if (wave.status !== 'pending') for (const host of wave.hosts) touched.add(host);

  const states = (
    await mapLimited([...touched].sort(), 16, (hostId) => revertedState(deps, group, rollout, hostId))
  ).flatMap((state) => state ?? []);
  await mapLimited(states, 16, (state) => writeDesired(deps.documents, state, now));
  // Re-published even when a retry finds them stored already: hosts ignore a state they applied.
  if (states.length > 0) await deps.publisher.publish(states);

  const status: Rollout['status'] = wasAborted(rollout, failure) ? 'aborted' : 'rolled-back';
  await updateRollout(deps.documents, rollout.id, now, (current) =>
    FINAL_ROLLOUT_STATUSES.has(current.status) && current.status !== 'aborted'
      ? undefined
      : { ...current, status, error: cause },
  );
  const statusEvent: NewEvent<GroupEvent> = {
    type: 'RolloutStatusChanged',
    eventId: `${rollout.id}.${status}`,
    data: { rolloutId: rollout.id, status, at: now.toISOString(), reason: cause },
  };
  await raiseAlarm(
    deps,
    ref,
    status === 'aborted' ? 'rollout-aborted' : 'rollout-failed',
    `rollout ${rollout.id} of ${rollout.service}: ${cause}; reverted ${states.length} host(s)`,
    rollout.id,
    rollout.hosts.failed,
    statusEvent,
  );
  return { status, reverted: states.map((state) => state.hostId) };
}

/** The host's current desired state with the rollout's service put back as the group defines it. */
async function revertedState(
  deps: ReconcileDeps,
  group: GroupDocument,
  rollout: Rollout,
  hostId: string,
): Promise<DesiredHostState | undefined> {
  const current = (await deps.documents.get<DesiredHostState>('desired', hostId))?.body;
  const running = current?.services[rollout.service];
  if (!current || !running) return undefined;
  const defined = group.compiled.hostTypes[current.hostType]?.services[rollout.service];
  const previous: ServiceSpec = {
    ...running,
    version: rollout.previousVersion ?? defined?.version ?? running.version,
    ...(rollout.config && defined ? { config: { ...defined.config } } : {}),
  };
  if (JSON.stringify(previous) === JSON.stringify(running)) return current;
  return {
    ...current,
    stateVersion: current.stateVersion + 1,
    services: { ...current.services, [rollout.service]: previous },
  };
}

async function raiseAlarm(
  deps: ReconcileDeps,
  ref: PlanRef,
  alarm: string,
  detail: string,
  rolloutId: string | undefined,
  hostIds: string[],
  ...before: NewEvent<GroupEvent>[]
): Promise<void> {
  const now = deps.now();
  await appendOnce(
    deps.events,
    ref.group,
    [
      ...before,
      {
        type: 'AlarmRaised',
        eventId: `${ref.planId}.alarm`,
        data: {
          alarm,
          detail,
          at: now.toISOString(),
          ...(rolloutId ? { rolloutId } : {}),
          ...(hostIds.length > 0 ? { hostIds } : {}),
        },
      },
    ],
    now,
  );
}
