import { setTimeout as sleep } from 'node:timers/promises';
import type { Rollout, Wave } from '../../../shared/groups/model.ts';
import { loadWave } from './apply.ts';
import {
  liveSessionsOf,
  loadGroup,
  mapLimited,
  needsRenewal,
  runAliveUntil,
  updateRollout,
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
  if (ref.rolloutId) {
    const rollout = (await deps.documents.get<Rollout>('rollout', ref.rolloutId))?.body;
    if (rollout?.status === 'aborted') return { status: 'aborted', detail: 'aborted', deadline };
    if (rollout && needsRenewal(rollout, now, ref.pollSeconds)) await renewRun(deps, ref.rolloutId, now, ref);
    if (rollout?.status === 'paused') {
      // The time a rollout spends paused is not the wave's to converge in.
      const pushed = new Date(now.getTime() + ref.deadlineSeconds * 1000).toISOString();
      return { status: 'waiting', detail: 'rollout paused', deadline: pushed };
    }
  }
  const wave = await waveOnce();
  const failed: string[] = [];
  const behind: string[] = [];
  const stillServing: string[] = [];
  const awaitedHosts = await mapLimited(wave.awaits, 16, (awaited) => deps.hosts.get(awaited.hostId));
  for (const [position, awaited] of wave.awaits.entries()) {
    const host = awaitedHosts[position];
    if (host?.status === 'failed') {
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

  if (failed.length > 0) {
    await settleWave(deps, ref, index, 'failed', failed);
    return { status: 'failed', detail: `wave ${index}: hosts failed: ${failed.join(', ')}`, deadline };
  }
  if (behind.length === 0) {
    await deps.plans.markConverged(ref.planId, index, now);
    await settleWave(deps, ref, index, 'done', []);
    return { status: 'converged', detail: `wave ${index} converged`, deadline };
  }
  if (now.getTime() > Date.parse(deadline)) {
    await settleWave(deps, ref, index, 'failed', behind);
    return {
      status: 'timed-out',
      detail: `wave ${index}: not converged by ${deadline}: ${behind.join(', ')}`,
      deadline,
    };
  }
  return { status: 'waiting', detail: `waiting for ${behind.join(', ')}`, deadline };
}

async function settleWave(
  deps: ReconcileDeps,
  ref: PlanRef,
  index: number,
  status: 'done' | 'failed',
  failedHosts: string[],
): Promise<void> {
  if (!ref.rolloutId) return;
  await updateRollout(deps.documents, ref.rolloutId, deps.now(), (rollout) => {
    const entry = rollout.waves.find((candidate) => candidate.index === index);
    if (!entry || entry.status === status) return undefined;
    entry.status = status;
    const failed = new Set(failedHosts);
    const settled = new Set(entry.hosts);
    const done = new Set(rollout.hosts.done);
    for (const host of entry.hosts) if (!failed.has(host)) done.add(host);
    return {
      ...rollout,
      hosts: {
        done: [...done].sort(),
        pending: rollout.hosts.pending.filter((host) => !settled.has(host)),
        failed: [...new Set([...rollout.hosts.failed, ...failedHosts])].sort(),
      },
    };
  });
}

/** This run still drives the rollout: a resume must not start another one beside it. */
async function renewRun(deps: ReconcileDeps, rolloutId: string, now: Date, ref: PlanRef): Promise<void> {
  await updateRollout(deps.documents, rolloutId, now, (rollout) =>
    rollout.status === 'aborted' || !needsRenewal(rollout, now, ref.pollSeconds)
      ? undefined
      : { ...rollout, runAliveUntil: runAliveUntil(now, ref.pollSeconds) },
  );
}
