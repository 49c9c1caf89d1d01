import { NotFoundError } from '../../../shared/errors.ts';
import { launchHost } from '../../../shared/groups/host-provisioning.ts';
import type { Action, DesiredHostState, Rollout, Wave } from '../../../shared/groups/model.ts';
import { loadGroup, mapLimited, runAliveUntil, updateRollout, writeDesired } from './common.ts';
import { recordInstanceGone } from './instance-gone.ts';
import type { CheckResult, PlanRef, ReconcileDeps } from './types.ts';

/**
 * A wave may start only once the one before it converged. The Map runs waves one at a time, so on AWS this
 * never fires; it keeps a stale or out-of-order invocation (and aws-local-stepfunctions, which starts queued
 * Map iterations even after one failed) from applying a wave whose predecessor failed.
 */
export class WaveOutOfOrderError extends Error {
  constructor(planId: string, wave: number) {
    super(`plan ${planId}: wave ${wave - 1} has not converged, so wave ${wave} may not start`);
    this.name = 'WaveOutOfOrder';
  }
}

/** An operator aborted the rollout: the state machine catches this and rolls back. */
export class RolloutAbortedError extends Error {
  constructor(rolloutId: string) {
    super(`rollout ${rolloutId} was aborted`);
    this.name = 'RolloutAborted';
  }
}

export function stateOf(action: Action): DesiredHostState | undefined {
  return action.kind === 'launch' ||
    action.kind === 'drain' ||
    action.kind === 'assign' ||
    action.kind === 'update-lb'
    ? action.state
    : undefined;
}

export async function loadWave(deps: ReconcileDeps, ref: PlanRef, index: number): Promise<Wave> {
  const plan = await deps.plans.load(ref.planId);
  const wave = plan.waves[index];
  if (!wave)
    throw new NotFoundError(`plan ${ref.planId} has no wave ${index}`, { planId: ref.planId, index });
  return wave;
}

/**
 * Applies one wave: desired states first (version-guarded), then instances and inboxes, then the fan-out.
 * Safe to run again: a state already stored is not rewritten, a host that already has an instance is not
 * launched again (and the fleet's launch is itself idempotent per host and state version), and hosts
 * ignore a state they already applied.
 */
export async function applyStep(deps: ReconcileDeps, ref: PlanRef, index: number): Promise<CheckResult> {
  const now = deps.now();
  const wave = await loadWave(deps, ref, index);
  if (index > 0 && !(await deps.plans.converged(ref.planId)).has(index - 1))
    throw new WaveOutOfOrderError(ref.planId, index);
  if (ref.rolloutId) {
    const rollout = await deps.documents.get<Rollout>('rollout', ref.rolloutId);
    if (rollout?.body.status === 'aborted') throw new RolloutAbortedError(ref.rolloutId);
  }
  const group = await loadGroup(deps.documents, ref.group);

  // 'notify' actions carry no state of their own: the planner gives every dependent that must change an
  // 'assign' of its own, and a dependent that need not change has nothing to apply.
  const states = wave.actions.flatMap((action) => stateOf(action) ?? []);
  await mapLimited(states, 16, (state) => writeDesired(deps.documents, state, now));

  const launches = wave.actions.filter((action) => action.kind === 'launch');
  if (launches.length > 0) {
    const live = new Map(
      (await deps.fleet.describe(ref.group))
        .filter((instance) => instance.state !== 'terminated')
        .map((instance) => [instance.hostId, instance]),
    );
    await mapLimited(launches, 8, async (launch) => {
      const hostType = group.compiled.hostTypes[launch.hostType];
      if (!hostType)
        throw new NotFoundError(`group ${ref.group} has no host type ${launch.hostType}`, {
          hostType: launch.hostType,
        });
      await deps.publisher.ensureInbox({ hostId: launch.hostId, group: ref.group, roles: hostType.roles });
      const request = {
        hostId: launch.hostId,
        group: ref.group,
        hostType: launch.hostType,
        roles: hostType.roles,
        instanceType: hostType.instanceType,
        ...(hostType.image === undefined ? {} : { image: hostType.image }),
        ...(hostType.launchTemplate === undefined ? {} : { launchTemplate: hostType.launchTemplate }),
        stateVersion: launch.state.stateVersion,
      };
      const existing = live.get(launch.hostId);
      if (deps.provisioner) {
        await launchHost(deps.fleet, deps.provisioner, request, existing);
      } else if (!existing) {
        await deps.fleet.launch({ ...request, secretRef: deps.settings.secretRef(launch.hostId) });
      }
    });
  }

  // Published after the launches so a new host's inbox exists; SQS keeps the state until its agent polls.
  if (states.length > 0) await deps.publisher.publish(states);

  const terminations = wave.actions.filter((action) => action.kind === 'terminate');
  if (terminations.length > 0) {
    const ended = new Map((await deps.fleet.describe(ref.group)).map((i) => [i.hostId, i.instanceId]));
    await mapLimited(terminations, 8, async (termination) => {
      await deps.fleet.terminate(termination.hostId);
      await deps.publisher.removeInbox(termination.hostId);
      await recordStopped(deps, termination.hostId, ended.get(termination.hostId));
    });
  }

  if (ref.rolloutId) {
    await updateRollout(deps.documents, ref.rolloutId, now, (rollout) => {
      const entry = rollout.waves.find((candidate) => candidate.index === index);
      if (entry?.status !== 'pending') return undefined;
      entry.status = 'running';
      rollout.runAliveUntil = runAliveUntil(now, ref.pollSeconds);
      return rollout;
    });
  }
  return {
    status: 'waiting',
    detail: `wave ${index} applied`,
    deadline: new Date(now.getTime() + ref.deadlineSeconds * 1000).toISOString(),
  };
}

/** A host the reconcile terminated is stopped, not failed: its projection must not read as a crash. */
async function recordStopped(deps: ReconcileDeps, hostId: string, instanceId: string | undefined) {
  const record = instanceId === undefined ? undefined : await deps.hosts.get(hostId);
  if (!record || instanceId === undefined) return;
  await recordInstanceGone(deps, record, {
    instanceId,
    reason: 'terminated by the reconcile',
    status: 'stopped',
  });
}
