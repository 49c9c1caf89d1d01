import type { ActualHost, DesiredHostState, Plan, Rollout } from '../../../shared/groups/model.ts';
import { type PlanInput, planGroup } from '../../../shared/groups/planner.ts';
import type { FleetInstance } from '../../../shared/groups/ports.ts';
import type { HostRecord } from '../../../shared/ports.ts';
import {
  appendOnce,
  FINAL_ROLLOUT_STATUSES,
  listGroupHosts,
  loadGroup,
  mapLimited,
  rolloutHostsOfWave,
  runAliveUntil,
  toActualHost,
  updateRollout,
} from './common.ts';
import { alarmOnRepeatedCrashes, alreadyRecorded, recordInstanceGone } from './instance-gone.ts';
import type { PlanRef, ReconcileDeps, ReconcileRequest } from './types.ts';

/**
 * A plan id is the group plus the run: its name and, when known, its start time, so that a retried Plan step
 * finds the plan it made, while a later run under the same name (local mode forgets names when it restarts;
 * Step Functions reuses none for 90 days) makes a plan of its own.
 */
export function planIdFor(
  group: string,
  executionName: string | undefined,
  now: Date,
  followUps = 0,
  executionStart?: string,
): string {
  const started = executionStart === undefined ? Number.NaN : Date.parse(executionStart);
  const name = executionName ?? `run-${now.getTime()}`;
  const run = `${group}.${name}${Number.isNaN(started) ? '' : `@${started}`}`;
  return followUps > 0 ? `${run}.pass-${followUps + 1}` : run;
}

export function newHostIdFor(group: string) {
  return (hostType: string, ordinal: number) => `${group}-${hostType}-${ordinal}`;
}

function pendingHost(assigned: DesiredHostState): ActualHost {
  return {
    hostId: assigned.hostId,
    hostType: assigned.hostType,
    status: 'pending',
    software: {},
    appliedStateVersion: 0,
    assignedStateVersion: assigned.stateVersion,
    liveSessions: 0,
    load: 0,
  };
}

/**
 * Loads the group, its hosts, their desired states and the rollout; plans; stores the plan; hands back only
 * the plan's id and wave indexes.
 */
export async function planStep(
  deps: ReconcileDeps,
  request: ReconcileRequest,
  executionName: string | undefined,
  executionStart?: string,
): Promise<PlanRef> {
  const now = deps.now();
  const group = await loadGroup(deps.documents, request.group);
  const [records, instances] = await Promise.all([
    listGroupHosts(deps.hosts, request.group),
    deps.fleet.describe(request.group),
  ]);
  const live = new Set(instances.filter((i) => i.state !== 'terminated').map((i) => i.hostId));
  const gone = new Set(instances.filter((i) => i.state === 'terminated').map((i) => i.hostId));
  const recorded = new Set(records.map((record) => record.hostId));
  // Launched but not reported yet: without them a second run would launch their replacements.
  const unreported = [...live].filter((hostId) => !recorded.has(hostId));
  const desired = await mapLimited([...recorded, ...unreported], 16, (hostId) =>
    deps.documents.get<DesiredHostState>('desired', hostId),
  );
  const desiredByHost: Record<string, DesiredHostState> = {};
  const assignedAt: Record<string, string> = {};
  for (const document of desired) {
    if (!document) continue;
    desiredByHost[document.id] = document.body;
    assignedAt[document.id] = document.updatedAt;
  }
  await recordGoneInstances(deps, request.group, records, instances, live, desiredByHost);
  // A host whose instance is gone, seen now or recorded by an earlier run (InstanceTerminated; after a restart
  // of local mode the fleet no longer knows it), is history: left out, and its id never handed out again.
  const retired = new Set(gone);
  for (const record of records) {
    if (!live.has(record.hostId) && record.terminated && record.terminated.afterSeq >= record.lastChangeSeq) {
      retired.add(record.hostId);
    }
  }
  const actual: ActualHost[] = [
    ...records
      .filter((record) => live.has(record.hostId) || !retired.has(record.hostId))
      .map((record) => toActualHost(record, desiredByHost[record.hostId], assignedAt[record.hostId])),
    ...unreported.flatMap((hostId) => {
      const assigned = desiredByHost[hostId];
      return assigned ? [pendingHost(assigned)] : [];
    }),
  ];

  const rollout = request.rolloutId
    ? (await deps.documents.get<Rollout>('rollout', request.rolloutId))?.body
    : undefined;
  const followUps = request.followUps ?? 0;
  const planId = planIdFor(request.group, executionName, now, followUps, executionStart);
  // The Wait state's SecondsPath takes whole seconds only.
  const pollSeconds = Math.max(0, Math.ceil(deps.settings.pollSeconds));
  const { rollout: rolloutPolicy, drain } = group.compiled.configuration;
  const deadlineSeconds = Math.max(
    rolloutPolicy.convergenceTimeoutSeconds,
    drain.waitForSessions ? drain.timeoutSeconds : 0,
  );
  const ref = (plan: Plan): PlanRef => ({
    planId,
    group: request.group,
    rolloutId: request.rolloutId ?? null,
    waves: plan.waves.map((_, index) => index),
    deadlineSeconds,
    pollSeconds,
    followUps,
  });

  // A rollout that ended (aborted before it ran, or an older run finished it) has nothing left to do.
  if (request.rolloutId && (!rollout || FINAL_ROLLOUT_STATUSES.has(rollout.status))) {
    const empty: Plan = { group: request.group, waves: [], deferred: [] };
    await deps.plans.save(planId, empty, now);
    return ref(empty);
  }

  const input: PlanInput = {
    group: group.compiled,
    running: group.running,
    hosts: actual,
    desired: desiredByHost,
    ...(rollout
      ? {
          rollout: {
            id: rollout.id,
            service: rollout.service,
            ...(rollout.version === undefined ? {} : { version: rollout.version }),
            ...(rollout.config === undefined ? {} : { config: rollout.config }),
            select: rollout.select ?? 'all',
          },
        }
      : {}),
    now: now.toISOString(),
    newHostId: newHostIdFor(request.group),
    retiredHostIds: retired,
  };
  const plan = planGroup(input);
  await deps.plans.save(planId, plan, now);
  const stored = await deps.plans.load(planId);

  if (rollout) await startRollout(deps, rollout, request.group, stored, now, pollSeconds);
  return ref(stored);
}

async function startRollout(
  deps: ReconcileDeps,
  rollout: Rollout,
  group: string,
  plan: Plan,
  now: Date,
  pollSeconds: number,
): Promise<void> {
  const waves = plan.waves.map((wave) => ({
    index: wave.index,
    hosts: rolloutHostsOfWave(wave.actions, rollout.service),
    status: 'pending' as const,
  }));
  const rolloutId = rollout.id;
  const updated = await updateRollout(deps.documents, rolloutId, now, (current) => {
    if (FINAL_ROLLOUT_STATUSES.has(current.status)) return undefined;
    const done = new Set(current.hosts.done);
    const pending = [...new Set(waves.flatMap((wave) => wave.hosts))].filter((host) => !done.has(host));
    return {
      ...current,
      status: current.status === 'pending' ? 'running' : current.status,
      waves,
      hosts: { done: [...done], pending, failed: [] },
      runAliveUntil: runAliveUntil(now, pollSeconds),
    };
  });
  // Keyed by the rollout, not the run: a retried Plan step, or a later run of the same rollout, records it once.
  if (updated?.status === 'running') {
    await appendOnce(
      deps.events,
      group,
      [
        {
          type: 'RolloutStatusChanged',
          eventId: `${rolloutId}.running`,
          data: { rolloutId, status: 'running', at: now.toISOString(), reason: 'reconcile started' },
        },
      ],
      now,
    );
  }
}

/**
 * A host whose instance ended without the reconcile ending it (a crash, a reclaimed instance) is failed; one
 * meant to stop is stopped. Its projection says so from now on, and the planner, which never sees it again,
 * launches its replacement. `records` is updated in place.
 */
async function recordGoneInstances(
  deps: ReconcileDeps,
  group: string,
  records: HostRecord[],
  instances: readonly FleetInstance[],
  live: ReadonlySet<string>,
  desired: Readonly<Record<string, DesiredHostState>>,
): Promise<void> {
  const ended = new Map(
    instances
      .filter((instance) => instance.state === 'terminated' && !live.has(instance.hostId))
      .map((instance) => [instance.hostId, instance]),
  );
  let crashed = false;
  await mapLimited(records, 8, async (record, index) => {
    const instance = ended.get(record.hostId);
    if (!instance || alreadyRecorded(record, instance.instanceId)) return;
    const meantToStop = desired[record.hostId]?.mode === 'stopped';
    const saved = await recordInstanceGone(deps, record, {
      instanceId: instance.instanceId,
      reason: meantToStop ? 'stopped by the reconcile' : 'instance ended unasked',
      status: meantToStop ? 'stopped' : 'failed',
    });
    if (!saved) return;
    records[index] = saved;
    if (saved.terminated?.status === 'failed') crashed = true;
  });
  if (crashed) await alarmOnRepeatedCrashes(deps, group, records);
}
