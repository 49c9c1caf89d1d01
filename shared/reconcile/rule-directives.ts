/**
 * What the reconcile makes of the rules that fire now: the planner's view of the hosts bent the way the rules
 * ask (a host to replace is shown as failed, a host taken out of its load balancer as unhealthy) and the
 * actions the planner does not plan by itself (a service restart, a reboot, a drain). Pure.
 *
 * The reconcile evaluates the rules itself, on what the streams say at the moment it plans, rather than
 * trusting what the monitor saw a tick ago: it is level-triggered, like everything else it does.
 */
import { RESTART_REASON } from '../fold.ts';
import type { Action, ActualHost, DesiredHostState, Plan } from '../groups/model.ts';
import type { Firing } from '../rules/types.ts';

export interface RuleDirectives {
  /** Hosts to replace with their own state (surge-first, within the budget): the planner sees them failed. */
  replace: ReadonlySet<string>;
  /** Hosts whose dead services are started again: a fresh state version of the same state. */
  restart: ReadonlySet<string>;
  reboot: ReadonlySet<string>;
  drain: ReadonlySet<string>;
  /** Load balancer membership the rules decide: true = in, false = out. */
  balance: ReadonlyMap<string, boolean>;
  /** For each host the rules touched, the rules that did: what the history records as the cause. */
  causes: ReadonlyMap<string, string[]>;
}

export function directivesOf(firings: readonly Firing[]): RuleDirectives {
  const replace = new Set<string>();
  const restart = new Set<string>();
  const reboot = new Set<string>();
  const drain = new Set<string>();
  const balance = new Map<string, boolean>();
  const causes = new Map<string, string[]>();
  for (const firing of firings) {
    const hostId = firing.hostId;
    if (hostId === undefined) continue;
    let acted = false;
    for (const action of firing.actions) {
      acted = true;
      if (action.kind === 'replace') replace.add(hostId);
      else if (action.kind === 'restart-service') restart.add(hostId);
      else if (action.kind === 'reboot') reboot.add(hostId);
      else if (action.kind === 'drain') drain.add(hostId);
      else if (action.kind === 'add-to-lb') balance.set(hostId, true);
      else if (action.kind === 'remove-from-lb') balance.set(hostId, false);
      else acted = false;
    }
    if (acted) causes.set(hostId, [...(causes.get(hostId) ?? []), firing.ruleId]);
  }
  // A host on its way out is neither restarted, rebooted nor drained first: its replacement takes over.
  for (const hostId of replace) {
    restart.delete(hostId);
    reboot.delete(hostId);
    drain.delete(hostId);
  }
  for (const hostId of reboot) restart.delete(hostId);
  return { replace, restart, reboot, drain, balance, causes };
}

/** The planner's hosts as the rules want them seen. */
export function bendHosts(hosts: readonly ActualHost[], directives: RuleDirectives): ActualHost[] {
  return hosts.map((host) => {
    let bent = host;
    if (directives.replace.has(host.hostId) && host.status !== 'failed' && host.status !== 'lost')
      bent = { ...bent, status: 'failed' };
    const balanced = directives.balance.get(host.hostId);
    if (balanced !== undefined) bent = { ...bent, unhealthy: !balanced };
    return bent;
  });
}

/**
 * The rules' own actions, in a wave of their own after the plan's, for the hosts the plan leaves alone (a
 * host the plan changes gets a fresh state anyway, which restarts its dead services too). Each is one host,
 * so each costs at most one host of the budget — and a restart or a reboot of a host whose service is dead
 * takes nothing out of service that was in it.
 */
export function ruleActions(
  plan: Plan,
  directives: RuleDirectives,
  desired: Readonly<Record<string, DesiredHostState>>,
): { actions: Action[]; reasons: Map<string, string> } {
  const touched = new Set<string>();
  for (const wave of plan.waves)
    for (const action of wave.actions) {
      if (action.kind === 'notify') continue;
      touched.add(action.hostId);
    }
  for (const entry of plan.deferred) touched.add(entry.hostId);
  const actions: Action[] = [];
  const reasons = new Map<string, string>();
  const fresh = (hostId: string, change: Partial<DesiredHostState>): DesiredHostState | undefined => {
    const state = desired[hostId];
    return state ? { ...state, ...change, stateVersion: state.stateVersion + 1 } : undefined;
  };
  for (const hostId of [...directives.reboot].sort()) {
    if (touched.has(hostId)) continue;
    actions.push({ kind: 'reboot', hostId });
  }
  for (const hostId of [...directives.restart].sort()) {
    const state = touched.has(hostId) ? undefined : fresh(hostId, {});
    if (!state) continue;
    actions.push({ kind: 'assign', hostId, state });
    reasons.set(hostId, RESTART_REASON);
  }
  for (const hostId of [...directives.drain].sort()) {
    if (touched.has(hostId) || desired[hostId]?.mode !== 'running') continue;
    const state = fresh(hostId, { mode: 'draining' });
    if (!state) continue;
    actions.push({ kind: 'drain', hostId, state });
    reasons.set(hostId, 'rule: drain');
  }
  return { actions, reasons };
}
