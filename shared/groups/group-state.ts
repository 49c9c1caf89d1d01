/**
 * The state of a group as its stream says it is: the fold the API decides commands on. Pure.
 */
import type { RecordedEvent } from '../events.ts';
import type { GroupEvent, RolloutRequested } from './events.ts';
import type { CompiledGroup, GroupDefinition, RolloutStatus } from './model.ts';

export const FINAL_ROLLOUT_STATUSES: ReadonlySet<RolloutStatus> = new Set<RolloutStatus>([
  'succeeded',
  'failed',
  'rolled-back',
  'aborted',
]);

export function isFinalRolloutStatus(status: RolloutStatus): boolean {
  return FINAL_ROLLOUT_STATUSES.has(status);
}

export interface ActiveRollout {
  id: string;
  /** What was requested, so a rollout document lost between the append and its write can be rebuilt. */
  request: RolloutRequested['data'];
}

export interface GroupState {
  exists: boolean;
  definition?: GroupDefinition;
  /** Stream version of the GroupDefined event in force (0 = never defined). */
  definitionVersion: number;
  running: boolean;
  /** Stream version of the GroupStarted / GroupStopped event that set `running`: names its reconcile run. */
  runVersion: number;
  activeRollout?: ActiveRollout;
  /** The last stream version folded in. */
  streamVersion: number;
}

export const NO_GROUP: GroupState = {
  exists: false,
  definitionVersion: 0,
  running: false,
  runVersion: 0,
  streamVersion: 0,
};

export function evolveGroup(state: GroupState, event: RecordedEvent<GroupEvent>): GroupState {
  const next = { ...state, streamVersion: event.version };
  switch (event.type) {
    case 'GroupDefined':
      // A group deleted and defined again starts stopped, as a new group would.
      return state.exists
        ? { ...next, definition: event.data.definition, definitionVersion: event.version }
        : {
            exists: true,
            definition: event.data.definition,
            definitionVersion: event.version,
            running: false,
            runVersion: 0,
            streamVersion: event.version,
          };
    case 'GroupStarted':
      return { ...next, running: true, runVersion: event.version };
    case 'GroupStopped':
      return { ...next, running: false, runVersion: event.version };
    case 'GroupDeleted':
      return { ...NO_GROUP, streamVersion: event.version };
    case 'RolloutRequested':
      return { ...next, activeRollout: { id: event.data.rolloutId, request: event.data } };
    case 'RolloutStatusChanged':
      return state.activeRollout?.id === event.data.rolloutId && isFinalRolloutStatus(event.data.status)
        ? withoutActiveRollout(next)
        : next;
    case 'AlarmRaised':
      return next;
  }
}

function withoutActiveRollout(state: GroupState): GroupState {
  const { activeRollout: _, ...rest } = state;
  return rest;
}

/**
 * The 'group' document: the fold above at `streamVersion`, plus the compiled definition. The first four
 * members are what the reconcile reads; the rest let the API resume the fold without rereading the stream.
 */
export interface GroupDocument {
  definition: GroupDefinition;
  compiled: CompiledGroup;
  running: boolean;
  definitionVersion: number;
  streamVersion: number;
  runVersion: number;
  activeRollout?: ActiveRollout;
}

export function stateOfDocument(document: GroupDocument): GroupState {
  return {
    exists: true,
    definition: document.definition,
    definitionVersion: document.definitionVersion,
    running: document.running,
    runVersion: document.runVersion ?? 0,
    streamVersion: document.streamVersion ?? document.definitionVersion,
    ...(document.activeRollout ? { activeRollout: document.activeRollout } : {}),
  };
}
