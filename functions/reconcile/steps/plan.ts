import { raiseAlarm } from '../../../shared/groups/group-service.ts';
import { isFinalRolloutStatus } from '../../../shared/groups/group-state.ts';
import type { ActualHost, DesiredHostState, Plan, Rollout } from '../../../shared/groups/model.ts';
import { type PlanInput, type PlanRollout, planGroup } from '../../../shared/groups/planner.ts';
import { recordTermination } from '../../../shared/hosts/host-commands.ts';
import { livenessOf, ruleContext, rulesOf } from '../../../shared/monitor/rule-context.ts';
import type { HostRecord } from '../../../shared/ports.ts';
import { repeatedCrashAlarms } from '../../../shared/reconcile/crash-alarm.ts';
import { classifyHosts, type HostClasses } from '../../../shared/reconcile/host-classes.ts';
import { claim, leaseSeconds } from '../../../shared/reconcile/lease.ts';
import { updateLease } from '../../../shared/reconcile/lease-store.ts';
import {
  bendHosts,
  directivesOf,
  type RuleDirectives,
  ruleActions,
} from '../../../shared/reconcile/rule-directives.ts';
import { commandRollout } from '../../../shared/rollouts/rollout-service.ts';
import { evaluateRules } from '../../../shared/rules/evaluate.ts';
import {
  type GroupDocument,
  listGroupHosts,
  loadGroup,
  loadRollout,
  mapLimited,
  revertOperation,
  rolloutHostsOfWave,
  targetOf,
  toActualHost,
  touchedHosts,
} from './common.ts';
import { recordHostHealth } from './host-health.ts';
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
  const run = runIdFor(group, executionName, now, executionStart);
  return followUps > 0 ? `${run}.pass-${followUps + 1}` : run;
}

/** The run as the group's lease knows it: every pass of one execution is the same run. */
export function runIdFor(
  group: string,
  executionName: string | undefined,
  now: Date,
  executionStart?: string,
) {
  const started = executionStart === undefined ? Number.NaN : Date.parse(executionStart);
  const name = executionName ?? `run-${now.getTime()}`;
  return `${group}.${name}${Number.isNaN(started) ? '' : `@${started}`}`;
}

export function newHostIdFor(group: string) {
  return (hostType: string, ordinal: number) => `${group}-${hostType}-${ordinal}`;
}

/**
 * Takes the group's lease (or a ticket to wait for it); then loads the group, its hosts and its active
 * rollout; plans from what the streams say now; stores the plan; hands back only the plan's id and waves.
 */
export async function planStep(
  deps: ReconcileDeps,
  request: ReconcileRequest,
  executionName: string | undefined,
  executionStart?: string,
): Promise<PlanRef> {
  const now = deps.now();
  const followUps = request.followUps ?? 0;
  const run = runIdFor(request.group, executionName, now, executionStart);
  const planId = planIdFor(request.group, executionName, now, followUps, executionStart);
  // The Wait state's SecondsPath takes whole seconds only.
  const pollSeconds = Math.max(0, Math.ceil(deps.settings.pollSeconds));
  const base = {
    planId,
    group: request.group,
    run,
    ticket: null,
    rolloutId: null,
    revert: false,
    waves: [],
    deadlineSeconds: 0,
    pollSeconds,
    followUps,
  } satisfies Omit<PlanRef, 'lease'>;

  const ticket = request.ticket ?? undefined;
  const claimed = await updateLease(deps.documents, request.group, now, (lease) =>
    claim(lease, run, now, leaseSeconds(pollSeconds), ticket),
  );
  if (claimed.kind === 'queued') return { ...base, lease: 'queued', ticket: claimed.ticket };
  if (claimed.kind === 'served') return { ...base, lease: 'served' };

  const group = await loadGroup(deps.documents, request.group);
  const [records, instances] = await Promise.all([
    listGroupHosts(deps.hosts, request.group),
    deps.fleet.describe(request.group),
  ]);
  const classes = classifyHosts(records, instances);
  await recordEndedInstances(deps, request.group, records, classes);
  if (group.running) await recordHostHealth(deps, group, records);
  const hosts = classifyHosts(records, instances).current;

  // Whatever triggered the run, the group's active rollout is what it carries on with: a run that took over
  // from one that died resumes it, and a trigger that arrived during a rollout does not plan without it.
  const rollout = await loadRollout(deps.documents, group.activeRollout?.id ?? request.rolloutId ?? null);
  const active = rollout && !isFinalRolloutStatus(rollout.status) ? rollout : undefined;
  const revert = active?.status === 'reverting';
  const { rollout: rolloutPolicy, drain } = group.compiled.configuration;
  const ref: Omit<PlanRef, 'waves'> = {
    ...base,
    lease: 'held',
    rolloutId: active?.id ?? null,
    revert,
    deadlineSeconds: Math.max(
      rolloutPolicy.convergenceTimeoutSeconds,
      drain.waitForSessions ? drain.timeoutSeconds : 0,
    ),
  };

  const desired: Record<string, DesiredHostState> = Object.fromEntries(
    records.flatMap((record) => (record.assigned ? [[record.hostId, record.assigned.state]] : [])),
  );
  // A revert puts back what the rollout changed and nothing else; otherwise the rules have their say.
  const liveness = livenessOf(group, deps.settings.heartbeatCoalesceSeconds);
  const directives = directivesOf(
    group.running && !revert ? evaluateRules(rulesOf(group), ruleContext(group, hosts, now, liveness)) : [],
  );
  const input: PlanInput = {
    group: group.compiled,
    running: group.running,
    hosts:
      revert && active
        ? repairable(hosts, active, classes.live)
        : bendHosts(hosts.map(toActualHost), directives),
    desired,
    ...(active ? plannedRollout(active, group, revert, hosts) : {}),
    now: now.toISOString(),
    newHostId: newHostIdFor(request.group),
    retiredHostIds: classes.retired,
    keepDraining: directives.drain,
  };
  const plan = withRuleWave(planGroup(input), directives, desired);
  await deps.plans.save(planId, plan, now);
  const stored = await deps.plans.load(planId);

  if (active) await recordPlanned(deps, active, stored, run, now);
  return { ...ref, waves: stored.waves.map((_, index) => index) };
}

/** The rules' own actions (restarts, reboots, drains) after everything the planner planned. */
function withRuleWave(
  plan: Plan,
  directives: RuleDirectives,
  desired: Record<string, DesiredHostState>,
): Plan {
  const { actions, reasons } = ruleActions(plan, directives, desired);
  if (actions.length === 0) return plan;
  const awaits = actions.flatMap((action) =>
    action.kind === 'assign' || action.kind === 'drain'
      ? [{ hostId: action.hostId, stateVersion: action.state.stateVersion }]
      : [],
  );
  const disrupted = actions.flatMap((action) =>
    action.kind === 'reboot' || action.kind === 'drain' ? [action.hostId] : [],
  );
  const wave = { index: plan.waves.length, actions, disrupted, awaits, reasons: Object.fromEntries(reasons) };
  return { ...plan, waves: [...plan.waves, wave] };
}

/**
 * A revert repairs, it does not replace: a host the rollout broke (it reports failed on the rollout's state,
 * its instance alive) gets its previous state back in place, as any other host the rollout touched. Shown to
 * the planner as failed it would be replaced with the state that broke it.
 */
function repairable(
  records: readonly HostRecord[],
  rollout: Rollout,
  live: ReadonlySet<string>,
): ActualHost[] {
  const touched = new Set(touchedHosts(rollout, records));
  return records
    .map(toActualHost)
    .map((host) =>
      host.status === 'failed' && touched.has(host.hostId) && live.has(host.hostId)
        ? { ...host, status: 'running' }
        : host,
    );
}

/** The rollout as the planner takes it; a revert is a rollout back to the group's version of the touched hosts. */
function plannedRollout(
  rollout: Rollout,
  group: GroupDocument,
  revert: boolean,
  records: readonly HostRecord[],
): { rollout?: PlanRollout } {
  const target = targetOf(rollout, group, revert);
  const operation = revert ? revertOperation(rollout) : (rollout.operation ?? 'update');
  const common = {
    id: rollout.id,
    service: rollout.service,
    ...(operation !== 'update' ? { operation } : {}),
    ...(target.version === undefined ? {} : { version: target.version }),
    ...(target.config === undefined ? {} : { config: target.config }),
  };
  // A replacement is level-triggered on what each host was launched as, reverting or not: a failed declared
  // replacement gave the host type its previous launch fields back, so the revert replaces the new hosts.
  if (rollout.replaceHostType !== undefined)
    return {
      rollout: { id: rollout.id, service: rollout.service, replaceHostType: rollout.replaceHostType },
    };
  if (!revert) return { rollout: { ...common, select: rollout.select ?? 'all' } };
  const touched = touchedHosts(rollout, records);
  if (touched.length === 0) return {};
  return { rollout: { ...common, select: `ids(${touched.join(',')})` } };
}

async function recordPlanned(deps: ReconcileDeps, rollout: Rollout, plan: Plan, run: string, now: Date) {
  const operation = rollout.status === 'reverting' ? revertOperation(rollout) : rollout.operation;
  const waves = plan.waves.map((wave) => ({
    index: wave.index,
    hosts: rolloutHostsOfWave(wave.actions, rollout.service, operation),
  }));
  const deferred = plan.deferred
    .filter((entry) => entry.reason.includes(`rollout ${rollout.id}`))
    .map((entry) => entry.hostId);
  const targets = [...new Set([...waves.flatMap((wave) => wave.hosts), ...deferred])].sort();
  await commandRollout(deps, rollout.id, { type: 'Plan', waves, targets, run, at: now });
}

/**
 * A host whose instance ended without the reconcile ending it (a crash, a reclaimed instance) is failed; one
 * meant to stop is stopped. Its stream says so from now on, and the planner, which never sees it again,
 * launches its replacement. `records` is updated in place.
 */
async function recordEndedInstances(
  deps: ReconcileDeps,
  group: string,
  records: HostRecord[],
  classes: HostClasses,
): Promise<void> {
  let crashed = false;
  const byId = new Map(records.map((record, index) => [record.hostId, index]));
  await mapLimited(classes.ended, 8, async ({ record, instance, meantToStop }) => {
    const saved = await recordTermination(deps, record.hostId, {
      instanceId: instance.instanceId,
      reason: meantToStop ? 'stopped by the reconcile' : 'instance ended unasked',
      status: meantToStop ? 'stopped' : 'failed',
    });
    if (!saved) return;
    // Its machine is gone: nothing may post as this host again.
    await deps.provisioner.revoke(record.hostId);
    records[byId.get(record.hostId) as number] = saved;
    if (saved.terminated?.status === 'failed') crashed = true;
  });
  if (!crashed) return;
  for (const alarm of repeatedCrashAlarms(group, records, deps.now())) await raiseAlarm(deps, group, alarm);
}
