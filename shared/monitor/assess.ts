/**
 * What one tick makes of a group's firings. Actions that change hosts or counts are the reconcile's: they make
 * a run due, and the run plans from the streams (level-triggered: the monitor only says "look now"). Alarms
 * and diagnoses are the monitor's own, told once per episode: an episode opens when its rule fires for its
 * subject and the group's stream has no open alarm of it, and it clears on the first tick the rule no longer
 * fires for that subject. Pure and deterministic; it never throws.
 */
import type { ScaleRequest } from '../groups/group-decider.ts';
import type { GroupDocument } from '../groups/group-state.ts';
import type { Lease } from '../reconcile/lease.ts';
import type { Firing, RuleAction, RuleActionKind, RuleContext } from '../rules/types.ts';
import { rulesOf } from './rule-context.ts';

/**
 * Actions the reconcile carries out: any of them makes a run due. `scale` is not among them: the monitor
 * records it (once per episode, in the group's stream) and a run is due only when that changed a count.
 */
export const RECONCILE_ACTIONS: ReadonlySet<RuleActionKind> = new Set<RuleActionKind>([
  'boot',
  'replace',
  'restart-service',
  'reboot',
  'add-to-lb',
  'remove-from-lb',
  'drain',
]);

/** A reason is a log line and an execution's input, not a report: a few subjects per rule, a bounded length. */
const HOSTS_PER_RULE_IN_REASON = 3;
const MAX_REASON_LENGTH = 240;

/** An alarm of a rule as the monitor raises it (shared/groups/group-stream.ts raiseAlarm). */
export interface RuleAlarm {
  /** `${ruleId}#${hostId ?? '*'}` */
  episode: string;
  /** One per opening of the episode: the group's stream version moves past every clearing. */
  alarmId: string;
  alarm: string;
  detail: string;
  hostIds?: string[];
  /** The rule asked for a diagnosis (`diagnose`): the hosts it names are read and diagnosed when it is raised. */
  diagnose: boolean;
  /** The service a diagnosis starts from, when the rule names one (`restart-service(x)`). */
  service?: string;
}

/** A rule's scale(<hostType>, …) as the monitor records it (shared/groups/group-stream.ts scaleGroup). */
export type RuleScale = ScaleRequest;

export interface Assessment {
  reconcile?: { reason: string };
  /** Scale requests of firing rules whose episode is not open yet. */
  scale?: RuleScale[];
  /** Open scale episodes whose rule no longer asks for that scale. */
  endScales?: string[];
  raise: RuleAlarm[];
  /** Open episodes of this group's rules whose rule no longer fires for their subject. */
  clear: string[];
}

export const NOTHING_DUE: Assessment = Object.freeze({ raise: [], clear: [] }) as Assessment;

/**
 * A run holds the group and has tickets it has not served: it plans again from current state before it ends,
 * so a new run would only queue behind it and be served by that plan (shared/reconcile/lease.ts).
 */
export function willPlanAgain(lease: Lease | undefined, now: Date): boolean {
  if (lease?.holder === undefined || lease.until === undefined) return false;
  return Date.parse(lease.until) > now.getTime() && lease.issued > lease.served;
}

export function episodeOf(firing: Pick<Firing, 'ruleId' | 'hostId'>): string {
  return `${firing.ruleId}#${firing.hostId ?? '*'}`;
}

export function assessGroup(
  group: GroupDocument,
  context: RuleContext,
  firings: readonly Firing[],
): Assessment {
  const statusOf = new Map(context.hosts.map((host) => [host.hostId, host.status]));
  const due = new Map<string, Set<string>>();
  const alarms = new Map<string, RuleAlarm>();
  for (const firing of firings) {
    const actions = firing.actions ?? [];
    if (actions.some((action) => RECONCILE_ACTIONS.has(action.kind))) {
      const subjects = due.get(firing.ruleId) ?? new Set<string>();
      if (firing.hostId !== undefined) subjects.add(firing.hostId);
      due.set(firing.ruleId, subjects);
    }
    const alarm = ruleAlarm(group, firing, actions);
    if (alarm && !alarms.has(alarm.episode)) alarms.set(alarm.episode, alarm);
  }

  const open = group.openAlarms ?? {};
  const raise = [...alarms.values()]
    .filter((alarm) => open[alarm.episode] === undefined)
    .sort((a, b) => compare(a.episode, b.episode));
  const openEpisodes = Object.keys(open);
  // An idle group has nothing open: its rules are only listed when there is something to clear.
  const ruleIds = openEpisodes.length > 0 ? rulesOf(group).map((rule) => rule.id) : [];
  const clear = openEpisodes
    .filter((episode) => !alarms.has(episode) && ruleIds.some((id) => episode.startsWith(`${id}#`)))
    .sort(compare);
  const reason = due.size > 0 ? reasonOf(due, statusOf) : undefined;
  const scales = new Map<string, RuleScale>();
  for (const firing of firings)
    for (const action of firing.actions ?? []) {
      if (action.kind !== 'scale') continue;
      const episode = `${firing.ruleId}#scale:${action.hostType}`;
      if (scales.has(episode)) continue;
      scales.set(episode, {
        hostType: action.hostType,
        ...(action.delta !== undefined ? { delta: action.delta } : {}),
        ...(action.count !== undefined ? { count: action.count } : {}),
        rule: firing.ruleId,
        episode,
        because: firing.because,
      });
    }
  const openScales = group.openScales ?? {};
  const scale = [...scales.values()].filter((request) => openScales[request.episode] === undefined);
  const endScales = Object.keys(openScales)
    .filter((episode) => !scales.has(episode))
    .sort(compare);
  return {
    ...(reason !== undefined ? { reconcile: { reason } } : {}),
    ...(scale.length > 0 ? { scale } : {}),
    ...(endScales.length > 0 ? { endScales } : {}),
    raise,
    clear,
  };
}

function ruleAlarm(
  group: GroupDocument,
  firing: Firing,
  actions: readonly RuleAction[],
): RuleAlarm | undefined {
  const texts = actions.flatMap((action) => (action.kind === 'alarm' ? [action.text] : []));
  const diagnose = actions.some((action) => action.kind === 'diagnose');
  if (texts.length === 0 && !diagnose) return undefined;
  const episode = episodeOf(firing);
  const alarm = texts.length > 0 ? texts.join('; ') : 'diagnosis';
  const subject = firing.hostId === undefined ? `group ${group.compiled.name}` : `host ${firing.hostId}`;
  const because = firing.because ? `: ${firing.because}` : '';
  const service = actions.find(
    (action): action is Extract<RuleAction, { kind: 'restart-service' }> =>
      action.kind === 'restart-service' && action.service !== undefined,
  )?.service;
  return {
    episode,
    alarmId: `${episode}@${group.streamVersion}`,
    alarm,
    detail: `${alarm} (${firing.ruleId} on ${subject}${because})`,
    ...(firing.hostId !== undefined ? { hostIds: [firing.hostId] } : {}),
    diagnose,
    ...(service !== undefined ? { service } : {}),
  };
}

/** "default:replace-failed(h-1 failed, h-2 lost), rule[3]": the rules that made the run due and their hosts. */
function reasonOf(
  due: ReadonlyMap<string, ReadonlySet<string>>,
  statusOf: ReadonlyMap<string, string>,
): string {
  const parts = [...due.entries()]
    .sort(([a], [b]) => compare(a, b))
    .map(([ruleId, hosts]) => {
      if (hosts.size === 0) return ruleId;
      const sorted = [...hosts].sort(compare);
      const named = sorted.slice(0, HOSTS_PER_RULE_IN_REASON).map((hostId) => {
        const status = statusOf.get(hostId);
        return status === undefined ? hostId : `${hostId} ${status}`;
      });
      const more = sorted.length - named.length;
      return `${ruleId}(${named.join(', ')}${more > 0 ? `, +${more} more` : ''})`;
    });
  const reason = `monitor: ${parts.join(', ')}`;
  return reason.length <= MAX_REASON_LENGTH ? reason : `${reason.slice(0, MAX_REASON_LENGTH - 1)}…`;
}

/** Code-unit order: the same on every machine, whatever its locale. */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
