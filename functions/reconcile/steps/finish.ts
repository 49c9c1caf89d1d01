import { isFinalRolloutStatus } from '../../../shared/groups/group-state.ts';
import type { Rollout } from '../../../shared/groups/model.ts';
import { isTerminated } from '../../../shared/reconcile/host-classes.ts';
import { leaseSeconds, release } from '../../../shared/reconcile/lease.ts';
import { updateLease } from '../../../shared/reconcile/lease-store.ts';
import { reportsTarget } from '../../../shared/reconcile/rollout-progress.ts';
import { commandRollout, readRollout } from '../../../shared/rollouts/rollout-service.ts';
import { listGroupHosts, loadGroup, loadRollout, mapLimited, targetOf, touchedHosts } from './common.ts';
import type { PlanRef, ReconcileDeps } from './types.ts';

/** Passes one run may add after its first because it launched: enough for new hosts to join their balancers. */
export const MAX_FOLLOW_UPS = 2;
/** Passes one run may add while its rollout waits for hosts (still coming up, or still to report the target). */
export const MAX_ROLLOUT_PASSES = 30;

export interface FinishResult {
  status: Rollout['status'] | 'converged' | 'superseded';
  definitionVersion?: number;
  /** Plan again in this run (see finishStep). */
  again: boolean;
  followUps: number;
  /** The rollout the next pass carries on with; null when it is over (or there is none). */
  rolloutId: string | null;
  /** The run ends failed: its rollout did not succeed (rolled back, aborted, failed). */
  failed: boolean;
  /** Why, for the execution's failure (null when it did not fail). */
  cause: string | null;
}

const UNSUCCESSFUL: ReadonlySet<string> = new Set(['rolled-back', 'aborted', 'failed']);

/**
 * The end of a pass. Another pass follows when
 * - the plan launched: what depends on the new hosts' endpoints (their load balancers' upstreams) can only be
 *   planned once they report them;
 * - the rollout is not over: a host it targets does not report the target yet (still booting, deferred, slow to
 *   apply), or a revert has hosts still to put back. A rollout succeeds only when every host it targets reports
 *   the target; after MAX_ROLLOUT_PASSES it fails, naming the hosts, and never reads as a success;
 * - triggers arrived while this run held the group: it plans again from the current state (level-triggered).
 */
export async function finishStep(deps: ReconcileDeps, ref: PlanRef): Promise<FinishResult> {
  const plan = await deps.plans.load(ref.planId);
  const launched = plan.waves.some((wave) => wave.actions.some((action) => action.kind === 'launch'));
  const rollout = await loadRollout(deps.documents, ref.rolloutId);
  const rolloutOpen = rollout !== undefined && !isFinalRolloutStatus(rollout.status);
  const settled = rolloutOpen ? await settleRollout(deps, ref, rollout) : rollout;
  const status = settled?.status ?? 'converged';
  const next =
    rolloutOpen && settled && isFinalRolloutStatus(settled.status)
      ? await nextRollout(deps, ref, rollout)
      : undefined;
  let again =
    (launched && ref.followUps < MAX_FOLLOW_UPS) ||
    status === 'running' ||
    status === 'reverting' ||
    next !== undefined;
  const now = deps.now();
  const ttl = leaseSeconds(ref.pollSeconds);
  const lease = await updateLease(deps.documents, ref.group, now, (current) =>
    release(current, ref.run, now, ttl, again),
  );
  if (lease.kind === 'not-held')
    return {
      status: 'superseded',
      again: false,
      followUps: ref.followUps,
      rolloutId: null,
      failed: false,
      cause: null,
    };
  if (lease.kind === 'again') again = true;
  // The rollout ended unsuccessfully in this pass: the execution says so, as a failed wave's run always did.
  const failed = !again && rolloutOpen && UNSUCCESSFUL.has(status);
  return {
    status,
    again,
    followUps: ref.followUps + 1,
    rolloutId:
      next?.id ??
      (rolloutOpen && (status === 'running' || status === 'reverting') ? (rollout?.id ?? null) : null),
    failed,
    cause: failed ? (status === 'aborted' ? 'aborted' : (settled?.error ?? `rollout ${status}`)) : null,
  };
}

/**
 * Succeeds, finishes the revert, goes on, or gives up: judged by what the hosts report now. Returns the rollout
 * as it then is (a paused one waits for its resume, which starts a run of its own).
 */
async function settleRollout(deps: ReconcileDeps, ref: PlanRef, rollout: Rollout): Promise<Rollout> {
  if (rollout.status === 'paused') return rollout;
  const now = deps.now();
  const group = await loadGroup(deps.documents, ref.group);
  const reverting = rollout.status === 'reverting';
  const target = targetOf(rollout, group, reverting);
  const { hostIds, records } = reverting
    ? await touchedRecords(deps, ref.group, rollout)
    : await targetedRecords(deps, rollout);
  // A host that is gone (terminated, retired) has nothing left to report; its replacement is a host of its own.
  // One that has not reported at all is behind.
  const behind = hostIds.filter((_, position) => {
    const record = records[position];
    if (record && (record.status === 'stopped' || isTerminated(record))) return false;
    return !reportsTarget(record, target);
  });
  if (behind.length === 0)
    return commandRollout(deps, rollout.id, { type: reverting ? 'FinishRevert' : 'Succeed', at: now });
  if (ref.followUps + 1 >= MAX_ROLLOUT_PASSES) {
    const reason = `${behind.length} host(s) do not report ${reverting ? 'the reverted' : 'the target'} ${rollout.service}${target.version ? ` ${target.version}` : ''} after ${ref.followUps + 1} passes: ${behind.join(', ')}`;
    return commandRollout(deps, rollout.id, { type: 'Fail', reason, at: now });
  }
  return rollout.status === 'pending' ? { ...rollout, status: 'running' } : rollout;
}

/**
 * The rollout that holds the group now that this pass ended its own: the next change a definition declared
 * (requested in the same append as this one's end). The run carries on with it; its stream is created here
 * should the crash of whoever ended the last one have left it uncreated.
 */
async function nextRollout(deps: ReconcileDeps, ref: PlanRef, ended: Rollout): Promise<Rollout | undefined> {
  const active = (await loadGroup(deps.documents, ref.group)).activeRollout;
  if (!active || active.id === ended.id) return undefined;
  const next = await readRollout(deps, active.id, ref.group);
  return isFinalRolloutStatus(next.status) ? undefined : next;
}

/** Every host the rollout targets, read one by one. */
async function targetedRecords(deps: ReconcileDeps, rollout: Rollout) {
  const hostIds = [
    ...new Set([...rollout.hosts.done, ...rollout.hosts.pending, ...rollout.hosts.failed]),
  ].sort();
  return { hostIds, records: await mapLimited(hostIds, 16, (hostId) => deps.hosts.get(hostId)) };
}

/**
 * The hosts a revert puts back, from the listing of the group that finds them (the group index may lag a
 * moment: a touched host it does not show yet is read by its key).
 */
async function touchedRecords(deps: ReconcileDeps, group: string, rollout: Rollout) {
  const all = await listGroupHosts(deps.hosts, group);
  const byId = new Map(all.map((record) => [record.hostId, record]));
  const hostIds = touchedHosts(rollout, all);
  const records = await mapLimited(hostIds, 16, async (hostId) => byId.get(hostId) ?? deps.hosts.get(hostId));
  return { hostIds, records };
}
