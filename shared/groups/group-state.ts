/**
 * The state of a group as its stream (`group#<name>`) says it is: the fold its decider decides on, and the
 * 'group' document that projects it. Pure.
 */
import { ValidationError } from '../errors.ts';
import type { RecordedEvent } from '../events.ts';
import { compileGroup } from './compile.ts';
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
  /** What was requested: the rollout's own stream is created from it, also when a crash left it uncreated. */
  request: RolloutRequested['data'];
  /** Its status as last mirrored from its stream; absent in documents from before the mirror (= pending). */
  status?: RolloutStatus;
}

/** Enough to know an alarm raised again by a retried or repeated judgement, without reading the stream's tail. */
export const RECENT_ALARMS = 100;

export interface GroupState {
  exists: boolean;
  definition?: GroupDefinition;
  /** The definition compiled at its version: set whenever `definition` is. */
  compiled?: CompiledGroup;
  /** Stream version of the GroupDefined event in force (0 = never defined). */
  definitionVersion: number;
  running: boolean;
  /** Stream version of the GroupStarted / GroupStopped event that set `running`: names its reconcile run. */
  runVersion: number;
  activeRollout?: ActiveRollout;
  /** Event ids of the latest alarms, oldest first, at most RECENT_ALARMS. */
  recentAlarmIds: readonly string[];
  /** The last stream version folded in. */
  streamVersion: number;
}

export const NO_GROUP: GroupState = {
  exists: false,
  definitionVersion: 0,
  running: false,
  runVersion: 0,
  recentAlarmIds: [],
  streamVersion: 0,
};

/**
 * Compiling is pure but not free: the decider compiles a new definition to refuse an invalid one before
 * anything is written, and the fold needs the same compiled group for the event that decision appends. The
 * memo (keyed by the definition object, checked against the version) makes that one compilation, while a
 * fold of a stream read back from the store, whose definitions are new objects, compiles on its own.
 */
const compiledDefinitions = new WeakMap<GroupDefinition, CompiledGroup>();

export function compiledAt(definition: GroupDefinition, definitionVersion: number): CompiledGroup {
  const known = compiledDefinitions.get(definition);
  if (known?.definitionVersion === definitionVersion) return known;
  const compiled = compileGroup(definition, definitionVersion);
  compiledDefinitions.set(definition, compiled);
  return compiled;
}

/** A definition recorded under older rules that no longer compiles keeps the group on what it compiled to last. */
function compiledOrPrevious(state: GroupState, definition: GroupDefinition, version: number) {
  try {
    return compiledAt(definition, version);
  } catch (error) {
    if (error instanceof ValidationError && state.compiled) return state.compiled;
    throw error;
  }
}

export function evolveGroup(state: GroupState, event: RecordedEvent<GroupEvent>): GroupState {
  const next = { ...state, streamVersion: event.version };
  switch (event.type) {
    case 'GroupDefined': {
      const defined = {
        definition: event.data.definition,
        compiled: compiledOrPrevious(state, event.data.definition, event.version),
        definitionVersion: event.version,
      };
      // A group deleted and defined again starts stopped, as a new group would.
      return state.exists
        ? { ...next, ...defined }
        : { ...NO_GROUP, ...defined, exists: true, streamVersion: event.version };
    }
    case 'GroupStarted':
      return { ...next, running: true, runVersion: event.version };
    case 'GroupStopped':
      return { ...next, running: false, runVersion: event.version };
    case 'GroupDeleted':
      return { ...NO_GROUP, streamVersion: event.version };
    case 'RolloutRequested':
      return {
        ...next,
        activeRollout: { id: event.data.rolloutId, request: event.data, status: 'pending' },
      };
    case 'RolloutStatusChanged': {
      const active = state.activeRollout;
      if (active?.id !== event.data.rolloutId) return next;
      return isFinalRolloutStatus(event.data.status)
        ? withoutActiveRollout(next)
        : { ...next, activeRollout: { ...active, status: event.data.status } };
    }
    case 'AlarmRaised':
      return { ...next, recentAlarmIds: [...state.recentAlarmIds, event.eventId].slice(-RECENT_ALARMS) };
  }
}

function withoutActiveRollout(state: GroupState): GroupState {
  const { activeRollout: _, ...rest } = state;
  return rest;
}

/**
 * The 'group' document: the fold above at `streamVersion`. The first four members are what the reconcile
 * reads; the rest let a command resume the fold without rereading the stream.
 */
export interface GroupDocument {
  definition: GroupDefinition;
  compiled: CompiledGroup;
  running: boolean;
  definitionVersion: number;
  streamVersion: number;
  runVersion: number;
  activeRollout?: ActiveRollout;
  recentAlarmIds?: string[];
}

/** The document of a group that exists; undefined when the stream says it does not (never defined, deleted). */
export function documentOf(state: GroupState): GroupDocument | undefined {
  if (!state.exists) return undefined;
  if (!state.definition || !state.compiled) throw new Error('a group that exists has a compiled definition');
  return {
    definition: state.definition,
    compiled: state.compiled,
    running: state.running,
    definitionVersion: state.definitionVersion,
    streamVersion: state.streamVersion,
    runVersion: state.runVersion,
    ...(state.activeRollout ? { activeRollout: state.activeRollout } : {}),
    ...(state.recentAlarmIds.length > 0 ? { recentAlarmIds: [...state.recentAlarmIds] } : {}),
  };
}

export function stateOfDocument(document: GroupDocument): GroupState {
  return {
    exists: true,
    definition: document.definition,
    compiled: document.compiled,
    definitionVersion: document.definitionVersion,
    running: document.running,
    runVersion: document.runVersion ?? 0,
    streamVersion: document.streamVersion ?? document.definitionVersion,
    recentAlarmIds: document.recentAlarmIds ?? [],
    ...(document.activeRollout ? { activeRollout: document.activeRollout } : {}),
  };
}
