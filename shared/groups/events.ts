/**
 * Events of a group's stream (`group#<name>`): its definitions, its lifecycle and its rollouts. Named in the
 * past tense like host events; the current group and rollout documents are projections of these.
 */
import type { GroupDefinition, RolloutRequest, RolloutStatus } from './model.ts';

export interface GroupDefined {
  type: 'GroupDefined';
  /**
   * The definition as accepted (validated); its stream version is the definition version. `rolloutId` is set
   * when no operator wrote it: a succeeded rollout made its service version/config the group's.
   */
  data: { definition: GroupDefinition; source: 'yaml' | 'json'; definedAt: string; rolloutId?: string };
}

export interface GroupStarted {
  type: 'GroupStarted';
  data: { startedAt: string };
}

export interface GroupStopped {
  type: 'GroupStopped';
  data: { stoppedAt: string };
}

export interface GroupDeleted {
  type: 'GroupDeleted';
  data: { deletedAt: string };
}

export interface RolloutRequested {
  type: 'RolloutRequested';
  data: RolloutRequest & { rolloutId: string; requestedAt: string; previousVersion?: string };
}

/**
 * A rollout moved to another status (paused, resumed = running, reverting, succeeded, failed, rolled-back,
 * aborted): the group's mirror of its rollout's stream (`rollout#<id>`), so the group knows whether a rollout
 * still holds it. `rolloutVersion` is the rollout stream's version the status was read at.
 */
export interface RolloutStatusChanged {
  type: 'RolloutStatusChanged';
  data: { rolloutId: string; status: RolloutStatus; at: string; reason?: string; rolloutVersion?: number };
}

/**
 * Something an operator must look at: a failed wave, repeated host failures, a drain that timed out. Its
 * event id is the alarm's own id, so one alarm is raised once however often its cause is judged.
 */
export interface AlarmRaised {
  type: 'AlarmRaised';
  data: { alarm: string; detail: string; at: string; rolloutId?: string; hostIds?: string[] };
}

export type GroupEvent =
  | GroupDefined
  | GroupStarted
  | GroupStopped
  | GroupDeleted
  | RolloutRequested
  | RolloutStatusChanged
  | AlarmRaised;

export function groupStream(name: string): string {
  return `group#${name}`;
}
