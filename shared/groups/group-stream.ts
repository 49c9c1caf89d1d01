/**
 * The group stream on the command layer: its decider, its 'group' document as the projection, and the
 * commands other parts of the control plane give it (a rollout's status mirrored, a rollout adopted, an
 * alarm). Ports only: no AWS SDK here.
 *
 * Requests per command (DynamoDB): the group document (1 GetItem), the events beyond it (1 Query, normally
 * empty), and when something changed one append (1 PutItem) and the document (1 PutItem).
 */

import { type AlarmDocument, recordAlarm, recordAlarmCleared } from '../alarms/alarm-documents.ts';
import { diagnose } from '../alarms/diagnosis.ts';
import { documentProjection } from '../command/document-projection.ts';
import type { CommandResult, StreamTarget } from '../command/runner.ts';
import { loadStream, runCommand } from '../command/runner.ts';
import { ValidationError } from '../errors.ts';
import type { EventStore, HostStore } from '../ports.ts';
import type { RetryPolicy } from '../retry.ts';
import { type GroupEvent, groupStream, type RolloutRequested, type ScalingDecidedData } from './events.ts';
import {
  type AdoptOutcome,
  type Alarm,
  alarmIsKnown,
  type GroupCommand,
  type GroupContext,
  type GroupOutcome,
  groupDecider,
  type ScaleRequest,
} from './group-decider.ts';
import { documentOf, type GroupDocument, type GroupState, stateOfDocument } from './group-state.ts';
import type { RolloutStatus } from './model.ts';
import type { AlarmPublisher, DocumentStore } from './ports.ts';

export interface GroupStreamDeps {
  events: EventStore;
  documents: DocumentStore;
  now: () => Date;
  retry?: RetryPolicy;
  /** Tells people of each alarm raised; without it alarms are only in the stream and the listing. */
  alarms?: AlarmPublisher;
  /** With it, an alarm naming hosts is raised with their diagnosis (what they reported, what they were told). */
  hosts?: HostStore;
}

export type GroupTarget = StreamTarget<GroupState, GroupCommand, GroupEvent, GroupOutcome, GroupContext>;

export function groupTarget(deps: GroupStreamDeps, name: string): GroupTarget {
  return {
    stream: groupStream(name),
    decider: groupDecider,
    projection: documentProjection<GroupState, GroupDocument>({
      documents: deps.documents,
      kind: 'group',
      id: name,
      now: deps.now,
      versionOf: groupDecider.versionOf,
      toBody: documentOf,
      fromBody: stateOfDocument,
    }),
    context: () => ({ name }),
  };
}

export type GroupResult<K extends GroupOutcome['kind']> = Omit<
  CommandResult<GroupState, GroupEvent, GroupOutcome>,
  'outcome'
> & { outcome: Extract<GroupOutcome, { kind: K }> };

/** Runs one command on the group's stream; `kind` is the outcome that command answers with. */
export async function runGroupCommand<K extends GroupOutcome['kind']>(
  deps: GroupStreamDeps,
  name: string,
  command: GroupCommand,
  kind: K,
): Promise<GroupResult<K>> {
  checkGroupName(name);
  const result = await runCommand(deps, groupTarget(deps, name), command);
  if (result.outcome.kind !== kind)
    throw new Error(`group command ${command.type} answered ${result.outcome.kind}, not ${kind}`);
  return result as GroupResult<K>;
}

/** The group as its stream says it is now: the document caught up with the events beyond it. */
export async function loadGroupState(deps: GroupStreamDeps, name: string): Promise<GroupState> {
  checkGroupName(name);
  return (await loadStream(deps.events, groupTarget(deps, name))).state;
}

/**
 * Raises an alarm on the group's stream once: an alarm id the stream already holds, or an episode open in
 * it, raises nothing. One that is raised is written to the alarm listing and published, in that order; both
 * come after the append and neither failure undoes it or throws: the stream holds the alarm, and the listing
 * can be rebuilt from it. With `deps.hosts` the hosts it names are diagnosed first, which is read only once
 * the group's state says the alarm is new, so a tick that judges the same alarm again reads nothing more.
 */
export async function raiseAlarm(
  deps: GroupStreamDeps,
  group: string,
  alarm: Alarm & { service?: string },
): Promise<{ raised: boolean }> {
  const { service, ...raising } = alarm;
  const diagnosed = await withDiagnosis(deps, group, raising, service);
  if (!diagnosed) return { raised: false };
  const at = deps.now();
  const { outcome } = await runGroupCommand(deps, group, { type: 'RaiseAlarm', ...diagnosed, at }, 'alarm');
  if (!outcome.raised) return { raised: false };
  const raised: AlarmDocument = {
    group,
    alarmId: diagnosed.alarmId,
    alarm: diagnosed.alarm,
    detail: diagnosed.detail,
    at: at.toISOString(),
    ...(diagnosed.rolloutId !== undefined ? { rolloutId: diagnosed.rolloutId } : {}),
    ...(diagnosed.hostIds !== undefined ? { hostIds: diagnosed.hostIds } : {}),
    ...(diagnosed.episode !== undefined ? { episode: diagnosed.episode } : {}),
    ...(diagnosed.diagnosis !== undefined ? { diagnosis: diagnosed.diagnosis } : {}),
  };
  await afterAlarm(raised.alarmId, 'record it in the alarm listing', () =>
    recordAlarm(deps.documents, raised, at),
  );
  const { alarms } = deps;
  if (alarms) {
    const { episode: _, ...published } = raised;
    await afterAlarm(raised.alarmId, 'publish it', () => alarms.publish(published));
  }
  return { raised: true };
}

/** The alarm with its diagnosis; undefined when the group's state already knows it (nothing to raise). */
async function withDiagnosis(
  deps: GroupStreamDeps,
  group: string,
  alarm: Alarm,
  service: string | undefined,
): Promise<Alarm | undefined> {
  const { hosts } = deps;
  if (!hosts || alarm.diagnosis !== undefined || (alarm.hostIds ?? []).length === 0) return alarm;
  const state = await loadGroupState(deps, group);
  // A group that does not exist is refused by the command itself.
  if (!state.compiled) return alarm;
  if (alarmIsKnown(state, alarm)) return undefined;
  try {
    const diagnosis = await diagnose(
      { events: deps.events, hosts },
      state.compiled,
      alarm.hostIds ?? [],
      service,
    );
    return { ...alarm, diagnosis };
  } catch (error) {
    // An alarm without its diagnosis still tells; one lost to a failed read does not.
    console.error(`alarm ${alarm.alarmId}: could not diagnose its hosts; raising it without`, error);
    return alarm;
  }
}

async function afterAlarm(alarmId: string, what: string, step: () => Promise<void>): Promise<void> {
  try {
    await step();
  } catch (error) {
    console.error(`alarm ${alarmId} is raised in the group's stream, but could not ${what}`, error);
  }
}

/**
 * Clears an alarm episode: the next alarm of it is raised again. Nothing when the episode is not open. The
 * alarm that opened it is marked cleared in the listing (a failure there is logged: the stream holds it).
 */
export async function clearAlarm(
  deps: GroupStreamDeps,
  group: string,
  episode: string,
): Promise<{ cleared: boolean }> {
  const at = deps.now();
  const { outcome } = await runGroupCommand(
    deps,
    group,
    { type: 'ClearAlarm', episode, at },
    'alarm-cleared',
  );
  const { opened } = outcome;
  if (!opened) return { cleared: false };
  await afterAlarm(opened.alarmId, 'mark it cleared in the alarm listing', () =>
    recordAlarmCleared(deps.documents, { group, ...opened }, at.toISOString(), at),
  );
  return { cleared: true };
}

/** A rule's scale(<hostType>, …), once per episode; `scaled` is absent when nothing changed. */
export async function scaleGroup(
  deps: GroupStreamDeps,
  group: string,
  request: ScaleRequest,
): Promise<{ scaled?: { from: number; to: number } }> {
  const { outcome } = await runGroupCommand(
    deps,
    group,
    { type: 'Scale', ...request, at: deps.now() },
    'scaled',
  );
  return outcome.scaled ? { scaled: outcome.scaled } : {};
}

/**
 * The autoscaler's decision for a host type at a tick: ScalingDecided, once per host type and tick, and only
 * from the count the group wants now (see the decider's decideScaling). `recorded` says whether it was appended.
 */
export async function recordScalingDecision(
  deps: GroupStreamDeps,
  group: string,
  decision: ScalingDecidedData,
): Promise<{ recorded: boolean }> {
  const { outcome } = await runGroupCommand(
    deps,
    group,
    { type: 'DecideScaling', decision },
    'scaling-decided',
  );
  return { recorded: outcome.recorded };
}

/** The scaling rule stopped firing: the next time it fires it may scale again. */
export async function endScaleEpisode(
  deps: GroupStreamDeps,
  group: string,
  episode: string,
): Promise<{ ended: boolean }> {
  const { outcome } = await runGroupCommand(
    deps,
    group,
    { type: 'EndScaleEpisode', episode, at: deps.now() },
    'scale-episode-ended',
  );
  return { ended: outcome.ended };
}

/** Mirrors a rollout's status into its group (once per status; nothing once the rollout no longer holds it). */
export async function recordRolloutStatus(
  deps: GroupStreamDeps,
  group: string,
  change: { rolloutId: string; status: RolloutStatus; rolloutVersion: number; reason?: string; at: Date },
): Promise<{ recorded: boolean; next?: RolloutRequested['data'] }> {
  const { outcome } = await runGroupCommand(
    deps,
    group,
    { type: 'RecordRolloutStatus', ...change },
    'rollout-status',
  );
  return { recorded: outcome.recorded, ...(outcome.next ? { next: outcome.next } : {}) };
}

/** Records a rollout's success in its group and, when it covered the whole group, makes it the definition. */
export async function adoptRollout(
  deps: GroupStreamDeps,
  group: string,
  success: { rolloutId: string; rolloutVersion: number; at: Date },
): Promise<Omit<AdoptOutcome, 'kind'>> {
  const { outcome } = await runGroupCommand(
    deps,
    group,
    { type: 'AdoptRollout', ...success },
    'rollout-adopted',
  );
  const { kind: _, ...adoption } = outcome;
  return adoption;
}

const GROUP_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export function checkGroupName(name: string): void {
  if (!GROUP_NAME.test(name)) {
    throw new ValidationError(
      `"${name}" is not a group name: lowercase letters, digits, ".", "_" or "-", starting with a letter or digit, at most 64`,
      { parameter: 'name' },
    );
  }
}
