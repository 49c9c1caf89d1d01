/**
 * The group stream on the command layer: its decider, its 'group' document as the projection, and the
 * commands other parts of the control plane give it (a rollout's status mirrored, a rollout adopted, an
 * alarm). Ports only: no AWS SDK here.
 *
 * Requests per command (DynamoDB): the group document (1 GetItem), the events beyond it (1 Query, normally
 * empty), and when something changed one append (1 PutItem) and the document (1 PutItem).
 */

import { documentProjection } from '../command/document-projection.ts';
import type { CommandResult, StreamTarget } from '../command/runner.ts';
import { loadStream, runCommand } from '../command/runner.ts';
import { ValidationError } from '../errors.ts';
import type { EventStore } from '../ports.ts';
import type { RetryPolicy } from '../retry.ts';
import { type GroupEvent, groupStream } from './events.ts';
import {
  type AdoptOutcome,
  type Alarm,
  type GroupCommand,
  type GroupContext,
  type GroupOutcome,
  groupDecider,
} from './group-decider.ts';
import { documentOf, type GroupDocument, type GroupState, stateOfDocument } from './group-state.ts';
import type { RolloutStatus } from './model.ts';
import type { DocumentStore } from './ports.ts';

export interface GroupStreamDeps {
  events: EventStore;
  documents: DocumentStore;
  now: () => Date;
  retry?: RetryPolicy;
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

/** Raises an alarm on the group's stream once: an alarm id the stream already holds raises nothing. */
export async function raiseAlarm(
  deps: GroupStreamDeps,
  group: string,
  alarm: Alarm,
): Promise<{ raised: boolean }> {
  const { outcome } = await runGroupCommand(
    deps,
    group,
    { type: 'RaiseAlarm', ...alarm, at: deps.now() },
    'alarm',
  );
  return { raised: outcome.raised };
}

/** Mirrors a rollout's status into its group (once per status; nothing once the rollout no longer holds it). */
export async function recordRolloutStatus(
  deps: GroupStreamDeps,
  group: string,
  change: { rolloutId: string; status: RolloutStatus; rolloutVersion: number; reason?: string; at: Date },
): Promise<{ recorded: boolean }> {
  const { outcome } = await runGroupCommand(
    deps,
    group,
    { type: 'RecordRolloutStatus', ...change },
    'rollout-status',
  );
  return { recorded: outcome.recorded };
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
