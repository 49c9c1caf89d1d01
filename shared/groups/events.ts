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

/** A rollout moved to another status (paused, resumed = running, succeeded, failed, rolled-back, aborted). */
export interface RolloutStatusChanged {
  type: 'RolloutStatusChanged';
  data: { rolloutId: string; status: RolloutStatus; at: string; reason?: string };
}

/** Something an operator must look at: a failed wave, repeated host failures, a drain that timed out. */
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
