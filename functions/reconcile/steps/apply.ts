import { NotFoundError } from '../../../shared/errors.ts';
import { launchHost } from '../../../shared/groups/host-provisioning.ts';
import type { Action, DesiredHostState, Wave } from '../../../shared/groups/model.ts';
import { assignState, recordTermination } from '../../../shared/hosts/host-commands.ts';
import { commandRollout } from '../../../shared/rollouts/rollout-service.ts';
import { loadGroup, loadRollout, mapLimited, stillHolds } from './common.ts';
import { deliverNotifications } from './notify.ts';
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

/** An operator aborted the rollout: the state machine catches this and plans the revert. */
export class RolloutAbortedError extends Error {
  constructor(rolloutId: string) {
    super(`rollout ${rolloutId} was aborted`);
    this.name = 'RolloutAborted';
  }
}

/** Another run took the group over (this one was presumed dead): this one must change nothing more. */
export class LeaseLostError extends Error {
  constructor(group: string, run: string) {
    super(`run ${run} no longer holds group ${group}`);
    this.name = 'LeaseLost';
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
 * Applies one wave: new hosts registered (a host's stream exists before anything is assigned to it), every
 * state recorded in its host's stream (StateAssigned: what it was told, by which run and rollout), then
 * instances, then the fan-out. Safe to run again: an assignment already recorded is not recorded twice, a host
 * that has an instance is not launched again (and the fleet's launch is idempotent per host and state
 * version), and hosts ignore a state they already applied.
 */
export async function applyStep(deps: ReconcileDeps, ref: PlanRef, index: number): Promise<CheckResult> {
  const now = deps.now();
  const wave = await loadWave(deps, ref, index);
  if (index > 0 && !(await deps.plans.converged(ref.planId)).has(index - 1))
    throw new WaveOutOfOrderError(ref.planId, index);
  if (!(await stillHolds(deps, ref))) throw new LeaseLostError(ref.group, ref.run);
  const rollout = await loadRollout(deps.documents, ref.rolloutId);
  if (rollout && !ref.revert && rollout.status === 'reverting') throw new RolloutAbortedError(rollout.id);
  const group = await loadGroup(deps.documents, ref.group);

  const launches = wave.actions.filter((action) => action.kind === 'launch');
  const requests = launches.map((launch) => {
    const hostType = group.compiled.hostTypes[launch.hostType];
    if (!hostType)
      throw new NotFoundError(`group ${ref.group} has no host type ${launch.hostType}`, {
        hostType: launch.hostType,
      });
    return {
      hostId: launch.hostId,
      group: ref.group,
      hostType: launch.hostType,
      roles: hostType.roles,
      instanceType: hostType.instanceType,
      ...(hostType.image === undefined ? {} : { image: hostType.image }),
      ...(hostType.launchTemplate === undefined ? {} : { launchTemplate: hostType.launchTemplate }),
      stateVersion: launch.state.stateVersion,
    };
  });
  // An instance found live is a retried wave's launch: prepared before it was launched, so only bound again.
  const live = new Map(
    requests.length === 0
      ? []
      : (await deps.fleet.describe(ref.group))
          .filter((instance) => instance.state !== 'terminated')
          .map((instance) => [instance.hostId, instance]),
  );
  const secretRefs = await mapLimited(requests, 8, ({ hostId, group: name, hostType, roles }) =>
    live.has(hostId)
      ? Promise.resolve(undefined)
      : deps.provisioner.prepare({ hostId, group: name, hostType, roles }),
  );

  // 'notify' actions carry no state of their own (a dependent that must change has an 'assign' of its own):
  // they are delivered as broadcasts once the states went out, below.
  const states = wave.actions.flatMap((action) => stateOf(action) ?? []);
  const by = {
    run: ref.planId,
    ...(ref.rolloutId ? { rolloutId: ref.rolloutId } : {}),
    reason: ref.revert ? 'revert' : ref.rolloutId ? 'rollout' : 'reconcile',
  };
  await mapLimited(states, 16, (state) => {
    const reason = wave.reasons?.[state.hostId];
    return assignState(deps, state, reason ? { ...by, reason } : by);
  });

  await mapLimited(requests, 8, async (request, position) => {
    await deps.publisher.ensureInbox({ hostId: request.hostId, group: ref.group, roles: request.roles });
    await launchHost(deps.fleet, deps.provisioner, request, live.get(request.hostId), secretRefs[position]);
  });

  // Published after the launches so a new host's inbox exists; SQS keeps the state until its agent polls.
  if (states.length > 0) await deps.publisher.publish(states);
  await deliverNotifications(deps, ref, index, wave);

  const reboots = wave.actions.filter((action) => action.kind === 'reboot');
  await mapLimited(reboots, 8, (reboot) => deps.fleet.reboot(reboot.hostId));

  const terminations = wave.actions.filter((action) => action.kind === 'terminate');
  if (terminations.length > 0) {
    const ended = new Map((await deps.fleet.describe(ref.group)).map((i) => [i.hostId, i.instanceId]));
    await mapLimited(terminations, 8, async (termination) => {
      await deps.fleet.terminate(termination.hostId);
      await deps.publisher.removeInbox(termination.hostId);
      const instanceId = ended.get(termination.hostId);
      // A host the reconcile terminated is stopped, not failed: its projection must not read as a crash.
      if (instanceId !== undefined && (await deps.hosts.get(termination.hostId)))
        await recordTermination(deps, termination.hostId, {
          instanceId,
          reason: 'terminated by the reconcile',
          status: 'stopped',
        });
      // Retired: its secret goes with it, so nothing can post as this host again.
      await deps.provisioner.revoke(termination.hostId);
    });
  }

  if (rollout) await commandRollout(deps, rollout.id, { type: 'StartWave', index, at: now });
  return {
    status: 'waiting',
    detail: `wave ${index} applied`,
    deadline: new Date(now.getTime() + ref.deadlineSeconds * 1000).toISOString(),
  };
}
