/**
 * Events of a group's stream (`group#<name>`): its definitions, its lifecycle and its rollouts. Named in the
 * past tense like host events; the current group and rollout documents are projections of these.
 */
import type { Diagnosis } from '../alarms/diagnosis-types.ts';
import type { Bound, Direction, ScaleExplanation } from '../scaling/decision-types.ts';
import type { GroupDefinition, RolloutFrom, RolloutRequest, RolloutStatus } from './model.ts';

export interface GroupDefined {
  type: 'GroupDefined';
  /**
   * The definition as accepted (validated); its stream version is the definition version. `rolloutId` is set
   * when no operator wrote it: a succeeded rollout made its service version/config the group's.
   */
  data: {
    definition: GroupDefinition;
    source: 'yaml' | 'json';
    definedAt: string;
    rolloutId?: string;
    /**
     * What this definition changes on a running group that its hosts must be rolled to (a service's version
     * or config, a host type's launch fields): one rollout each, one at a time; those not requested in the
     * same append wait in the group's queue.
     */
    declared?: DeclaredChange[];
    /** Set with `rolloutId`: that declared rollout did not succeed, so its service got its previous spec back. */
    restored?: true;
  };
}

/** A change a definition declared, to be rolled out (see GroupDefined.declared). */
export interface DeclaredChange {
  /** The service changed; for a replacement, the host type's first service. */
  service: string;
  /** Set when the host type's launch fields changed: its hosts are replaced. */
  replaceHostType?: string;
  /** The definition that declared it. */
  definitionVersion: number;
  /** What the hosts ran before: what the definition goes back to should the rollout not succeed. */
  from?: RolloutFrom;
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
  data: RolloutRequest & {
    rolloutId: string;
    requestedAt: string;
    previousVersion?: string;
    /** What the hosts ran before (the definition's spec of the service then): what a revert goes back to. */
    from?: RolloutFrom;
  };
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
 * event id is the alarm's own id, so one alarm is raised once however often its cause is judged. An alarm of
 * a rule names its `episode` (rule and subject, e.g. "rule[2]#host-7"): while that episode is open no other
 * alarm of it is raised, so a condition that holds on every monitor tick tells the operator once.
 */
export interface AlarmRaised {
  type: 'AlarmRaised';
  data: {
    alarm: string;
    detail: string;
    at: string;
    rolloutId?: string;
    hostIds?: string[];
    episode?: string;
    /** What the hosts concerned reported and what depends on the failing service, read when it was raised. */
    diagnosis?: Diagnosis;
  };
}

/** The condition of an episode no longer holds: the next time it does is a new episode, and a new alarm. */
export interface AlarmCleared {
  type: 'AlarmCleared';
  /** `alarmId` is the alarm that opened the episode. */
  data: { episode: string; alarmId: string; at: string };
}

/**
 * A rule's `scale(<hostType>, …)` changed how many hosts of a type the group wants, once per episode of the
 * rule (a relative step applied on every tick would run away). The definition's own count comes back with
 * the next GroupDefined: an operator's PUT wins over what a rule decided before it.
 */
export interface CapacityScaled {
  type: 'CapacityScaled';
  data: {
    hostType: string;
    from: number;
    to: number;
    rule: string;
    episode: string;
    because: string;
    at: string;
  };
}

/**
 * The autoscaler (the monitor's scaling pass, shared/monitor/scaling.ts) moved a scaled host type's count, with
 * everything that went into it. It sets the capacity as CapacityScaled does; a later GroupDefined keeps it
 * (clamped into the new min/max) instead of going back to `count`. Event id `scaling#<hostType>#<at>`: once per
 * host type and tick.
 */
export interface ScalingDecided {
  type: 'ScalingDecided';
  data: ScalingDecidedData;
}

export interface ScalingDecidedData {
  hostType: string;
  from: number;
  to: number;
  direction: Direction;
  /** The recommendation before stabilization, and what made it. */
  recommendation: number;
  recommendedBy: Bound;
  /** The step that set the final count. */
  boundBy: Bound;
  /** decideScale's explanation: counts, demand, targets, forecast, windows, limits (JSON-safe). */
  inputs: ScaleExplanation;
  /** The monitor tick it was decided at (ISO). */
  at: string;
}

/** The rule that scaled stopped firing: its next firing is a new episode, and may scale again. */
export interface ScaleEpisodeEnded {
  type: 'ScaleEpisodeEnded';
  data: { episode: string; at: string };
}

export type GroupEvent =
  | CapacityScaled
  | ScalingDecided
  | ScaleEpisodeEnded
  | GroupDefined
  | GroupStarted
  | GroupStopped
  | GroupDeleted
  | RolloutRequested
  | RolloutStatusChanged
  | AlarmRaised
  | AlarmCleared;

export function groupStream(name: string): string {
  return `group#${name}`;
}
