import { setTimeout as sleep } from 'node:timers/promises';
import type { Wave } from '../../../shared/groups/model.ts';
import type { HostRecord } from '../../../shared/ports.ts';
import { reportsTarget } from '../../../shared/reconcile/rollout-progress.ts';
import { commandRollout } from '../../../shared/rollouts/rollout-service.ts';
import { loadWave } from './apply.ts';
import {
  liveSessionsOf,
  loadGroup,
  loadRollout,
  mapLimited,
  revertOperation,
  rolloutHostsOfWave,
  stillHolds,
  targetOf,
} from './common.ts';
import type { CheckResult, PlanRef, ReconcileDeps } from './types.ts';

/**
 * Has the wave converged? Every awaited host must report (appliedStateVersion) the state it was given, and
 * a drained host must have no live sessions left. A failed host fails the wave; so does the deadline. A
 * paused rollout is simply not converged yet; its deadline moves on while it is paused.
 */
export async function checkStep(
  deps: ReconcileDeps,
  ref: PlanRef,
  index: number,
  deadline: string,
): Promise<CheckResult> {
  // Hosts usually apply a state within a second: looking again for a short while here is far cheaper (and
  // quicker) than a Wait state plus another task, which Step Functions bills per transition.
  const windowMs = deps.settings.checkWindowMs ?? 0;
  const intervalMs = deps.settings.checkIntervalMs ?? DEFAULT_CHECK_INTERVAL_MS;
  const started = Date.now();
  if (!(await stillHolds(deps, ref)))
    return { status: 'failed', detail: `run ${ref.run} no longer holds group ${ref.group}`, deadline };
  // The plan does not change while the wave is checked: read it once, not at every look.
  let wave: Wave | undefined;
  const waveOnce = async () => {
    wave ??= await loadWave(deps, ref, index);
    return wave;
  };
  for (;;) {
    const result = await checkOnce(deps, ref, index, deadline, waveOnce);
    if (result.status !== 'waiting' || Date.now() - started + intervalMs > windowMs) return result;
    await sleep(intervalMs);
  }
}

/** How often a check looks again within its window: each look reads every awaited host once. */
export const DEFAULT_CHECK_INTERVAL_MS = 200;

async function checkOnce(
  deps: ReconcileDeps,
  ref: PlanRef,
  index: number,
  deadline: string,
  waveOnce: () => Promise<Wave>,
): Promise<CheckResult> {
  const now = deps.now();
  const rollout = await loadRollout(deps.documents, ref.rolloutId);
  if (rollout && !ref.revert && rollout.status === 'reverting')
    return { status: 'aborted', detail: 'aborted', deadline };
  if (rollout?.status === 'paused') {
    // The time a rollout spends paused is not the wave's to converge in.
    const pushed = new Date(now.getTime() + ref.deadlineSeconds * 1000).toISOString();
    return { status: 'waiting', detail: 'rollout paused', deadline: pushed };
  }
  const wave = await waveOnce();
  const failed: string[] = [];
  const behind: string[] = [];
  const stillServing: string[] = [];
  const awaitedHosts = await mapLimited(wave.awaits, 16, (awaited) => deps.hosts.get(awaited.hostId));
  for (const [position, awaited] of wave.awaits.entries()) {
    const host = awaitedHosts[position];
    if (host && failedSince(host, awaited.stateVersion)) {
      failed.push(awaited.hostId);
      continue;
    }
    const applied = host?.observed?.appliedStateVersion ?? 0;
    // A host still booting has taken the state but serves nothing yet: what comes next (its load balancer,
    // its dependents) must wait until it is up.
    const up = host !== undefined && host.status !== 'booting' && host.status !== 'pending';
    if (!host || applied < awaited.stateVersion || !up) behind.push(awaited.hostId);
    else if (awaited.drained && liveSessionsOf(host) > 0) stillServing.push(awaited.hostId);
  }
  if (stillServing.length > 0) {
    const { drain } = (await loadGroup(deps.documents, ref.group)).compiled.configuration;
    // The wave was applied deadlineSeconds before its deadline; the drain timeout runs from then.
    const appliedAt = Date.parse(deadline) - ref.deadlineSeconds * 1000;
    const drainTimedOut = now.getTime() > appliedAt + drain.timeoutSeconds * 1000;
    if (!drainTimedOut) behind.push(...stillServing);
    else if (drain.onTimeout === 'fail') failed.push(...stillServing);
  }

  const settle = () => settleWave(deps, ref, index, wave, awaitedHosts, failed);
  if (failed.length > 0) {
    await settle();
    return { status: 'failed', detail: `wave ${index}: hosts failed: ${failed.join(', ')}`, deadline };
  }
  if (behind.length === 0) {
    await deps.plans.markConverged(ref.planId, index, now);
    await settle();
    return { status: 'converged', detail: `wave ${index} converged`, deadline };
  }
  if (now.getTime() > Date.parse(deadline)) {
    failed.push(...behind);
    await settle();
    return {
      status: 'timed-out',
      detail: `wave ${index}: not converged by ${deadline}: ${behind.join(', ')}`,
      deadline,
    };
  }
  return { status: 'waiting', detail: `waiting for ${behind.join(', ')}`, deadline };
}

/**
 * The host failed after it was given the awaited state: it said so in a report that came after the
 * assignment, or its instance is gone. A host that was failed before (a revert puts back a host the rollout
 * broke) is given the chance to recover: it is only behind until it reports again.
 */
function failedSince(host: HostRecord, stateVersion: number): boolean {
  if (host.status !== 'failed') return false;
  if (host.terminated && host.terminated.afterSeq >= host.lastChangeSeq) return true;
  const assigned = host.assigned;
  if (!assigned || assigned.state.stateVersion < stateVersion) return true;
  return (host.observedVersion ?? 0) > assigned.version;
}

/**
 * Records the wave in the rollout: a host is done only when it reports the rollout's target (a drained host
 * still on the old version is not, whatever the wave did to it).
 */
async function settleWave(
  deps: ReconcileDeps,
  ref: PlanRef,
  index: number,
  wave: Wave,
  awaitedHosts: readonly (HostRecord | undefined)[],
  failed: readonly string[],
): Promise<void> {
  const rollout = await loadRollout(deps.documents, ref.rolloutId);
  if (!rollout) return;
  const group = await loadGroup(deps.documents, ref.group);
  const target = targetOf(rollout, group, ref.revert);
  const byId = new Map(wave.awaits.map((awaited, position) => [awaited.hostId, awaitedHosts[position]]));
  const failedHosts = new Set(failed);
  const hosts = rolloutHostsOfWave(
    wave.actions,
    rollout.service,
    ref.revert ? revertOperation(rollout) : rollout.operation,
  );
  // A revert puts hosts back: that makes none of them done with the rollout.
  const done = ref.revert
    ? []
    : hosts.filter((hostId) => !failedHosts.has(hostId) && reportsTarget(byId.get(hostId), target));
  await commandRollout(deps, rollout.id, {
    type: 'SettleWave',
    index,
    done,
    failed: hosts.filter((hostId) => failedHosts.has(hostId)),
    at: deps.now(),
  });
}
