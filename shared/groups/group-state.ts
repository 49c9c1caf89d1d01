/**
 * The state of a group as its stream (`group#<name>`) says it is: the fold its decider decides on, and the
 * 'group' document that projects it. Pure.
 */
import { ValidationError } from '../errors.ts';
import type { RecordedEvent } from '../events.ts';
import { compileGroup, withEffectiveRules } from './compile.ts';
import type { DeclaredChange, GroupEvent, RolloutRequested } from './events.ts';
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

/** An alarm episode raised and not cleared yet, by the episode it names. */
export interface OpenAlarm {
  alarmId: string;
  raisedAt: string;
}

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
  /** Episodes raised and not cleared: a rule's alarm is raised once per episode, not on every tick. */
  openAlarms?: Readonly<Record<string, OpenAlarm>>;
  /**
   * Changes definitions declared that wait for their rollout, oldest first: one rollout holds a group at a
   * time, so the next is requested when the active one ends. One entry per service (or replaced host type).
   */
  declaredQueue?: readonly DeclaredChange[];
  /** host type → hosts wanted, as rules scaled it since the definition (applied to `compiled`). */
  capacity?: Readonly<Record<string, number>>;
  /** Scale episodes open (episode → when it scaled): a rule scales once per episode. */
  openScales?: Readonly<Record<string, string>>;
  /** host type → the tick of its last ScalingDecided (ISO): the autoscaler decides once per host type and tick. */
  scaledAt?: Readonly<Record<string, string>>;
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
      const queued = withDeclared(state.exists ? state.declaredQueue : undefined, event.data.declared);
      // The definition's counts win over what rules scaled the group to before it, except for a host type
      // the autoscaler scales: it keeps its count, clamped into the new min/max.
      const { capacity: _, ...unscaled } = next;
      const kept = state.exists ? autoscaledCapacity(event.data.definition, state.capacity) : undefined;
      const redefined = kept
        ? { ...unscaled, ...defined, capacity: kept, compiled: withCapacity(defined.compiled, kept) }
        : { ...unscaled, ...defined };
      // A group deleted and defined again starts stopped, as a new group would.
      return withQueue(
        state.exists ? redefined : { ...NO_GROUP, ...defined, exists: true, streamVersion: event.version },
        queued,
      );
    }
    case 'GroupStarted':
      return { ...next, running: true, runVersion: event.version };
    case 'GroupStopped':
      // A stopped group's hosts go; the ones it starts with are launched from the definition as it is then.
      return withQueue({ ...next, running: false, runVersion: event.version }, []);
    case 'GroupDeleted':
      return { ...NO_GROUP, streamVersion: event.version };
    case 'RolloutRequested': {
      const requested = {
        ...next,
        activeRollout: { id: event.data.rolloutId, request: event.data, status: 'pending' as const },
      };
      if (event.data.cause?.kind !== 'declared') return requested;
      const key = declaredKey(event.data);
      return withQueue(
        requested,
        (state.declaredQueue ?? []).filter((change) => declaredKey(change) !== key),
      );
    }
    case 'RolloutStatusChanged': {
      const active = state.activeRollout;
      if (active?.id !== event.data.rolloutId) return next;
      return isFinalRolloutStatus(event.data.status)
        ? withoutActiveRollout(next)
        : { ...next, activeRollout: { ...active, status: event.data.status } };
    }
    case 'AlarmRaised': {
      const raised = {
        ...next,
        recentAlarmIds: [...state.recentAlarmIds, event.eventId].slice(-RECENT_ALARMS),
      };
      const { episode } = event.data;
      if (episode === undefined) return raised;
      const open = { alarmId: event.eventId, raisedAt: event.data.at };
      return { ...raised, openAlarms: { ...state.openAlarms, [episode]: open } };
    }
    case 'AlarmCleared': {
      const { [event.data.episode]: _, ...open } = state.openAlarms ?? {};
      return withOpenAlarms(next, open);
    }
    case 'CapacityScaled': {
      const { hostType, to, episode, at } = event.data;
      const capacity = { ...state.capacity, [hostType]: to };
      return {
        ...next,
        capacity,
        openScales: { ...state.openScales, [episode]: at },
        ...(state.compiled ? { compiled: withCapacity(state.compiled, capacity) } : {}),
      };
    }
    case 'ScalingDecided': {
      const { hostType, to, at } = event.data;
      const capacity = { ...state.capacity, [hostType]: to };
      return {
        ...next,
        capacity,
        scaledAt: { ...state.scaledAt, [hostType]: at },
        ...(state.compiled ? { compiled: withCapacity(state.compiled, capacity) } : {}),
      };
    }
    case 'ScaleEpisodeEnded': {
      const { [event.data.episode]: _, ...open } = state.openScales ?? {};
      if (Object.keys(open).length > 0) return { ...next, openScales: open };
      const { openScales: __, ...rest } = next;
      return rest;
    }
  }
}

/** The compiled group with the host counts rules scaled it to. */
export function withCapacity(
  compiled: CompiledGroup,
  capacity: Readonly<Record<string, number>> | undefined,
): CompiledGroup {
  if (!capacity) return compiled;
  const hostTypes = { ...compiled.hostTypes };
  for (const [name, desired] of Object.entries(capacity)) {
    const type = hostTypes[name];
    if (type) hostTypes[name] = { ...type, desired };
  }
  return { ...compiled, hostTypes };
}

/**
 * The counts to keep across a new definition: those of host types it still scales (`scaling` with min and
 * max), clamped into its bounds. Undefined when there are none, so an unscaled group folds as before.
 */
export function autoscaledCapacity(
  definition: GroupDefinition,
  capacity: Readonly<Record<string, number>> | undefined,
): Record<string, number> | undefined {
  const kept: Record<string, number> = {};
  for (const [name, count] of Object.entries(capacity ?? {})) {
    const type = definition.hostTypes[name];
    if (type?.scaling === undefined || type.min === undefined || type.max === undefined) continue;
    kept[name] = Math.min(type.max, Math.max(type.min, count));
  }
  return Object.keys(kept).length > 0 ? kept : undefined;
}

/** One entry per service (or host type): a later declaration of it moves it on, its `from` stays the first. */
export function declaredKey(change: Pick<DeclaredChange, 'service' | 'replaceHostType'>): string {
  return change.replaceHostType !== undefined
    ? `host-type:${change.replaceHostType}`
    : `service:${change.service}`;
}

function withDeclared(
  queue: readonly DeclaredChange[] | undefined,
  declared: readonly DeclaredChange[] | undefined,
): readonly DeclaredChange[] {
  const merged = [...(queue ?? [])];
  for (const change of declared ?? []) {
    const at = merged.findIndex((entry) => declaredKey(entry) === declaredKey(change));
    const known = merged[at];
    if (known === undefined) merged.push(change);
    else merged[at] = { ...change, ...(known.from !== undefined ? { from: known.from } : {}) };
  }
  return merged;
}

function withQueue(state: GroupState, queue: readonly DeclaredChange[]): GroupState {
  if (queue.length > 0) return { ...state, declaredQueue: queue };
  const { declaredQueue: _, ...rest } = state;
  return rest;
}

function withOpenAlarms(state: GroupState, open: Record<string, OpenAlarm>): GroupState {
  if (Object.keys(open).length > 0) return { ...state, openAlarms: open };
  const { openAlarms: _, ...rest } = state;
  return rest;
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
  openAlarms?: Record<string, OpenAlarm>;
  declaredQueue?: DeclaredChange[];
  capacity?: Record<string, number>;
  openScales?: Record<string, string>;
  scaledAt?: Record<string, string>;
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
    ...(state.openAlarms && Object.keys(state.openAlarms).length > 0
      ? { openAlarms: { ...state.openAlarms } }
      : {}),
    ...(state.declaredQueue && state.declaredQueue.length > 0
      ? { declaredQueue: [...state.declaredQueue] }
      : {}),
    ...(state.capacity ? { capacity: { ...state.capacity } } : {}),
    ...(state.openScales ? { openScales: { ...state.openScales } } : {}),
    ...(state.scaledAt ? { scaledAt: { ...state.scaledAt } } : {}),
  };
}

export function stateOfDocument(document: GroupDocument): GroupState {
  return {
    exists: true,
    definition: document.definition,
    compiled: withEffectiveRules(document.compiled, document.definition),
    definitionVersion: document.definitionVersion,
    running: document.running,
    runVersion: document.runVersion ?? 0,
    streamVersion: document.streamVersion ?? document.definitionVersion,
    recentAlarmIds: document.recentAlarmIds ?? [],
    ...(document.openAlarms ? { openAlarms: document.openAlarms } : {}),
    ...(document.declaredQueue ? { declaredQueue: document.declaredQueue } : {}),
    ...(document.capacity ? { capacity: document.capacity } : {}),
    ...(document.openScales ? { openScales: document.openScales } : {}),
    ...(document.scaledAt ? { scaledAt: document.scaledAt } : {}),
    ...(document.activeRollout ? { activeRollout: document.activeRollout } : {}),
  };
}
