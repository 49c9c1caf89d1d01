/**
 * The group stream (`group#<name>`): its definitions, its lifecycle, the rollouts that hold it (mirrored from
 * their own streams) and its alarms. Pure: time, ids and the group's name come in through the command and
 * the context; what a command may not do is refused by throwing the domain error that says why.
 */

import type { Diagnosis } from '../alarms/diagnosis-types.ts';
import { canonicalJson } from '../canonical.ts';
import type { Decider, Decision } from '../command/decider.ts';
import { ConflictError, NotFoundError, StaleVersionError, ValidationError } from '../errors.ts';
import type { NewEvent } from '../events.ts';
import type { DefinitionFormat } from './compile.ts';
import type { DeclaredChange, GroupEvent, RolloutRequested, ScalingDecidedData } from './events.ts';
import {
  type ActiveRollout,
  compiledAt,
  evolveGroup,
  type GroupState,
  isFinalRolloutStatus,
  NO_GROUP,
  type OpenAlarm,
} from './group-state.ts';
import { changesLaunch, launchSpecOf } from './launch-spec.ts';
import type { CompiledGroup, GroupDefinition, RolloutFrom, RolloutRequest, RolloutStatus } from './model.ts';
import { parseSelector } from './selectors.ts';

export type { GroupDocument } from './group-state.ts';

/**
 * Conditions on the definition version a command goes ahead on (the HTTP edge reads them from If-Match and
 * If-None-Match). When one does not hold the command is refused with a StaleVersionError.
 */
export interface DefinitionPreconditions {
  /** Only when the group exists and, if versions are given, is at one of them. */
  matching?: { versions?: readonly number[] };
  /** Only when the group does not exist or, if versions are given, is at none of them. */
  notMatching?: { versions?: readonly number[] };
}

export interface Alarm {
  /** Derived from the alarm's cause (never random): the event id, so the same alarm is raised once. */
  alarmId: string;
  alarm: string;
  detail: string;
  rolloutId?: string;
  hostIds?: string[];
  /**
   * A rule's alarm names its episode (rule and subject, e.g. "rule[2]#host-7"): while the episode is open
   * (raised, not cleared) raising it again appends nothing, whatever its alarm id.
   */
  episode?: string;
  diagnosis?: Diagnosis;
}

/** A rule's scale(<hostType>, …): what the monitor asks the group's stream to record. */
export interface ScaleRequest {
  hostType: string;
  /** A step (+1, -2) or a count (3). */
  delta?: number;
  count?: number;
  rule: string;
  /** `${ruleId}#scale:${hostType}`: once per episode of the rule, per host type it scales. */
  episode: string;
  because: string;
}

export type GroupCommand =
  | {
      type: 'Define';
      definition: GroupDefinition;
      source: DefinitionFormat;
      preconditions?: DefinitionPreconditions;
      at: Date;
    }
  | { type: 'Start'; at: Date }
  | { type: 'Stop'; at: Date }
  | { type: 'Delete'; preconditions?: DefinitionPreconditions; at: Date }
  | { type: 'RequestRollout'; rolloutId: string; request: RolloutRequest; at: Date }
  | {
      type: 'RecordRolloutStatus';
      rolloutId: string;
      status: RolloutStatus;
      /** The rollout stream's version the status was read at. */
      rolloutVersion: number;
      reason?: string;
      at: Date;
    }
  | { type: 'AdoptRollout'; rolloutId: string; rolloutVersion: number; at: Date }
  | ({ type: 'RaiseAlarm'; at: Date } & Alarm)
  | { type: 'ClearAlarm'; episode: string; at: Date }
  | ({ type: 'Scale'; at: Date } & ScaleRequest)
  | { type: 'EndScaleEpisode'; episode: string; at: Date }
  /** The autoscaler's decision for a host type at a monitor tick (`decision.at`). */
  | { type: 'DecideScaling'; decision: ScalingDecidedData };

export type GroupOutcome =
  /** `requested`: the declared rollout this definition started (the rest of what it declared is queued). */
  | {
      kind: 'defined';
      outcome: 'created' | 'updated' | 'unchanged';
      requested?: RolloutRequested['data'];
    }
  | { kind: 'run'; changed: boolean }
  | { kind: 'deleted' }
  | { kind: 'rollout-requested'; requested: RolloutRequested['data'] }
  /** `next`: the declared rollout requested because this one ended (its stream is still to be created). */
  | { kind: 'rollout-status'; recorded: boolean; next?: RolloutRequested['data'] }
  | AdoptOutcome
  | { kind: 'alarm'; raised: boolean }
  | { kind: 'scaled'; scaled?: { from: number; to: number } }
  | { kind: 'scale-episode-ended'; ended: boolean }
  | { kind: 'scaling-decided'; recorded: boolean }
  /** `opened`: the alarm that opened the episode cleared. */
  | { kind: 'alarm-cleared'; opened?: OpenAlarm };

export interface AdoptOutcome {
  kind: 'rollout-adopted';
  /** False when the stream does not name the rollout active (recorded before, or never requested here). */
  recorded: boolean;
  /** True when the group's definition now names the rollout's version/config. */
  adopted: boolean;
  definitionVersion?: number;
  /** The declared rollout requested next, now that this one ended. */
  next?: RolloutRequested['data'];
}

/** The group's name: the stream's, which its events do not carry. */
export interface GroupContext {
  name: string;
}

type GroupDecision = Decision<GroupEvent, GroupOutcome>;

export const groupDecider: Decider<GroupState, GroupCommand, GroupEvent, GroupOutcome, GroupContext> = {
  initial: NO_GROUP,
  versionOf: (state) => state.streamVersion,
  evolve: evolveGroup,
  decide(command, state, { name }): GroupDecision {
    const next = state.streamVersion + 1;
    switch (command.type) {
      case 'Define':
        return define(name, state, command);
      case 'Start':
      case 'Stop': {
        existing(name, state);
        const running = command.type === 'Start';
        if (state.running === running) return nothing({ kind: 'run', changed: false });
        const at = command.at.toISOString();
        return decided(
          { kind: 'run', changed: true },
          running
            ? { type: 'GroupStarted', eventId: `start#${name}#${next}`, data: { startedAt: at } }
            : { type: 'GroupStopped', eventId: `stop#${name}#${next}`, data: { stoppedAt: at } },
        );
      }
      case 'Delete':
        existing(name, state);
        checkPreconditions(name, state, command.preconditions);
        if (state.running) {
          throw new ConflictError(`group "${name}" is running: stop it first, then delete it`, {
            group: name,
            running: true,
            reason: 'group-running',
          });
        }
        return decided(
          { kind: 'deleted' },
          {
            type: 'GroupDeleted',
            eventId: `delete#${name}#${next}`,
            data: { deletedAt: command.at.toISOString() },
          },
        );
      case 'RequestRollout':
        return requestRollout(name, state, command);
      case 'RecordRolloutStatus': {
        const active = state.activeRollout;
        // Once per status: a retried mirror, or one of a rollout that no longer holds the group, records nothing.
        if (active?.id !== command.rolloutId || statusOf(active) === command.status)
          return nothing({ kind: 'rollout-status', recorded: false });
        const events: NewEvent<GroupEvent>[] = [
          statusChanged(
            command.rolloutId,
            command.status,
            command.rolloutVersion,
            command.at,
            command.reason,
          ),
        ];
        const restored = restoredAfterFailure(state, active, command.status, command.at);
        if (restored) events.push(restored);
        const next = nextDeclared(state, events, command.at);
        if (next) events.push(next.event);
        return {
          events,
          outcome: { kind: 'rollout-status', recorded: true, ...(next ? { next: next.requested } : {}) },
        };
      }
      case 'AdoptRollout':
        return adoptRollout(state, command);
      case 'RaiseAlarm': {
        existing(name, state);
        if (alarmIsKnown(state, command)) return nothing({ kind: 'alarm', raised: false });
        return decided(
          { kind: 'alarm', raised: true },
          {
            type: 'AlarmRaised',
            eventId: command.alarmId,
            data: {
              alarm: command.alarm,
              detail: command.detail,
              at: command.at.toISOString(),
              ...(command.rolloutId !== undefined ? { rolloutId: command.rolloutId } : {}),
              ...(command.hostIds !== undefined ? { hostIds: command.hostIds } : {}),
              ...(command.episode !== undefined ? { episode: command.episode } : {}),
              ...(command.diagnosis !== undefined ? { diagnosis: command.diagnosis } : {}),
            },
          },
        );
      }
      case 'Scale':
        return scale(name, state, command);
      case 'DecideScaling':
        return decideScaling(name, state, command.decision);
      case 'EndScaleEpisode': {
        existing(name, state);
        if (state.openScales?.[command.episode] === undefined)
          return nothing({ kind: 'scale-episode-ended', ended: false });
        return decided(
          { kind: 'scale-episode-ended', ended: true },
          {
            type: 'ScaleEpisodeEnded',
            eventId: `scale#${command.episode}#${state.openScales[command.episode]}#ended`,
            data: { episode: command.episode, at: command.at.toISOString() },
          },
        );
      }
      case 'ClearAlarm': {
        existing(name, state);
        const open = state.openAlarms?.[command.episode];
        if (!open) return nothing({ kind: 'alarm-cleared' });
        return decided(
          { kind: 'alarm-cleared', opened: { alarmId: open.alarmId, raisedAt: open.raisedAt } },
          {
            type: 'AlarmCleared',
            // The alarm opened the episode once, so its id names the one clearing of it.
            eventId: `${open.alarmId}#cleared`,
            data: { episode: command.episode, alarmId: open.alarmId, at: command.at.toISOString() },
          },
        );
      }
    }
  },
};

/**
 * Once per episode, within the host type's min and max (a fixed count without them: from zero up): a rule
 * asking for what the group already wants records nothing, so a quiet rule costs no write.
 */
function scale(
  name: string,
  state: GroupState,
  command: Extract<GroupCommand, { type: 'Scale' }>,
): GroupDecision {
  existing(name, state);
  const type = state.compiled?.hostTypes[command.hostType];
  if (!type)
    throw new ValidationError(`group "${name}" has no host type ${command.hostType} to scale`, {
      hostType: command.hostType,
    });
  if (state.openScales?.[command.episode] !== undefined) return nothing({ kind: 'scaled' });
  const from = type.desired;
  const wanted = command.count ?? from + (command.delta ?? 0);
  const to = Math.max(type.min ?? 0, Math.min(type.max ?? Number.POSITIVE_INFINITY, wanted));
  if (to === from) return nothing({ kind: 'scaled' });
  const at = command.at.toISOString();
  return decided(
    { kind: 'scaled', scaled: { from, to } },
    {
      type: 'CapacityScaled',
      eventId: `scale#${command.episode}#${at}`,
      data: {
        hostType: command.hostType,
        from,
        to,
        rule: command.rule,
        episode: command.episode,
        because: command.because,
        at,
      },
    },
  );
}

/**
 * Once per host type and tick, and only on the count it was decided from: a retried tick (same `at`, or an
 * older one) and a decision overtaken by a PUT or a rule's scale (its `from` is no longer the count) record
 * nothing; the next tick decides again from what is.
 */
function decideScaling(name: string, state: GroupState, decision: ScalingDecidedData): GroupDecision {
  existing(name, state);
  const type = state.compiled?.hostTypes[decision.hostType];
  if (!type || type.scaling === undefined)
    throw new ValidationError(`group "${name}" has no scaled host type ${decision.hostType}`, {
      hostType: decision.hostType,
    });
  const last = state.scaledAt?.[decision.hostType];
  const stale = last !== undefined && Date.parse(decision.at) <= Date.parse(last);
  const to = Math.max(type.min ?? 0, Math.min(type.max ?? decision.to, decision.to));
  if (stale || decision.from !== type.desired || to === type.desired)
    return nothing({ kind: 'scaling-decided', recorded: false });
  return decided(
    { kind: 'scaling-decided', recorded: true },
    {
      type: 'ScalingDecided',
      eventId: `scaling#${decision.hostType}#${decision.at}`,
      data: { ...decision, to },
    },
  );
}

/** Raising it would append nothing: the stream holds its id, or its episode is open. */
export function alarmIsKnown(state: GroupState, alarm: Pick<Alarm, 'alarmId' | 'episode'>): boolean {
  if (state.recentAlarmIds.includes(alarm.alarmId)) return true;
  return alarm.episode !== undefined && state.openAlarms?.[alarm.episode] !== undefined;
}

function define(
  name: string,
  state: GroupState,
  command: Extract<GroupCommand, { type: 'Define' }>,
): GroupDecision {
  checkPreconditions(name, state, command.preconditions);
  const { definition } = command;
  if (state.exists && sameDefinition(state.definition, definition))
    return nothing({ kind: 'defined', outcome: 'unchanged' });
  const active = state.activeRollout;
  const replaced = active?.request.replaceHostType;
  const before = state.definition;
  const replacedType = replaced === undefined ? undefined : before?.hostTypes[replaced];
  const changesReplaced =
    replaced !== undefined &&
    replacedType !== undefined &&
    definition.hostTypes[replaced] !== undefined &&
    changesLaunch(replacedType, definition.hostTypes[replaced]);
  if (
    active &&
    before &&
    ((replaced === undefined && changesService(before, definition, active.request.service)) ||
      changesReplaced)
  ) {
    throw new ConflictError(
      `rollout ${active.id} of group "${name}" is ${statusOf(active)} and changes service "${active.request.service}": a definition may change that service's version or config only once it has ended: ${wayOut(statusOf(active))}`,
      {
        group: name,
        rolloutId: active.id,
        rolloutStatus: statusOf(active),
        service: active.request.service,
        reason: 'rollout-active',
      },
    );
  }
  const version = state.streamVersion + 1;
  // Compiled before anything is written: an invalid definition is refused and leaves no trace in the stream.
  compiledAt(definition, version);
  // A running group's hosts run what the definition said before: what it changes of them is rolled out.
  const declared = state.running && before ? declaredChanges(before, definition, version) : [];
  const events: NewEvent<GroupEvent>[] = [
    {
      type: 'GroupDefined',
      eventId: `define#${name}#${version}`,
      data: {
        definition,
        source: command.source,
        definedAt: command.at.toISOString(),
        ...(declared.length > 0 ? { declared } : {}),
      },
    },
  ];
  const next = nextDeclared(state, events, command.at);
  if (next) events.push(next.event);
  return {
    events,
    outcome: {
      kind: 'defined',
      outcome: state.exists ? 'updated' : 'created',
      ...(next ? { requested: next.requested } : {}),
    },
  };
}

/* ───────────── declared changes ───────────── */

/**
 * What `after` changes that the hosts of a running group must be rolled to, in a stable order: each service
 * whose version or config changed (changesService), by name, then each host type whose launch fields
 * (instance type, image, launch template, roles) changed, by name. Counts are not among them: the planner
 * launches and scales in within the budget on every reconcile anyway.
 */
export function declaredChanges(
  before: GroupDefinition,
  after: GroupDefinition,
  definitionVersion: number,
): DeclaredChange[] {
  const changes: DeclaredChange[] = [];
  const services = new Set(Object.values(after.hostTypes).flatMap((type) => Object.keys(type.services)));
  for (const service of [...services].sort()) {
    if (!changesService(before, after, service)) continue;
    const from = fromOf(before, service);
    changes.push({ service, definitionVersion, ...(from ? { from } : {}) });
  }
  for (const hostType of Object.keys(after.hostTypes).sort()) {
    const was = before.hostTypes[hostType];
    const now = after.hostTypes[hostType] as GroupDefinition['hostTypes'][string];
    const service = Object.keys(now.services).sort()[0];
    if (!was || service === undefined || !changesLaunch(was, now)) continue;
    changes.push({
      service,
      replaceHostType: hostType,
      definitionVersion,
      from: { launch: launchSpecOf(was) },
    });
  }
  return changes;
}

/** The service's spec in the first host type (by name) that runs it: what its hosts run before a change. */
function fromOf(definition: GroupDefinition, service: string): RolloutFrom | undefined {
  for (const name of Object.keys(definition.hostTypes).sort()) {
    const spec = definition.hostTypes[name]?.services[service];
    if (!spec) continue;
    return {
      version: spec.version,
      ...(spec.config !== undefined ? { config: { ...spec.config } } : {}),
      ...(spec.stopped ? { stopped: true as const } : {}),
    };
  }
  return undefined;
}

/** The state `events` lead to from `state`, as the fold will see them once appended. */
function after(state: GroupState, events: readonly NewEvent<GroupEvent>[], at: Date): GroupState {
  return events.reduce(
    (folded, event, i) =>
      evolveGroup(folded, {
        ...event,
        stream: 'group',
        version: state.streamVersion + i + 1,
        recordedAt: at.toISOString(),
      }),
    state,
  );
}

/**
 * The next declared change, requested once nothing holds the group (in the same append as what let it go):
 * under the group's own rollout policy, over the whole group, with the definition's version and config.
 * A change whose service or host type is gone from the definition since is dropped from the queue.
 */
function nextDeclared(
  state: GroupState,
  events: readonly NewEvent<GroupEvent>[],
  at: Date,
): { event: NewEvent<GroupEvent>; requested: RolloutRequested['data'] } | undefined {
  const folded = after(state, events, at);
  if (!folded.running || folded.activeRollout || !folded.compiled) return undefined;
  const compiled = folded.compiled;
  for (const change of folded.declaredQueue ?? []) {
    const requested = declaredRequest(compiled, change, at, folded.streamVersion + 1);
    if (!requested) continue;
    return {
      requested,
      event: {
        type: 'RolloutRequested',
        eventId: `rollout#${requested.rolloutId}#requested`,
        data: requested,
      },
    };
  }
  return undefined;
}

function declaredRequest(
  compiled: CompiledGroup,
  change: DeclaredChange,
  at: Date,
  streamVersion: number,
): RolloutRequested['data'] | undefined {
  const cause = { kind: 'declared' as const, definitionVersion: change.definitionVersion };
  const common = {
    service: change.service,
    select: 'all',
    cause,
    rolloutId: declaredRolloutId(at, streamVersion, change),
    requestedAt: at.toISOString(),
    ...(change.from ? { from: change.from } : {}),
    ...(change.from?.version !== undefined ? { previousVersion: change.from.version } : {}),
  };
  if (change.replaceHostType !== undefined) {
    const type = compiled.hostTypes[change.replaceHostType];
    if (!type?.services[change.service]) return undefined;
    return { ...common, replaceHostType: change.replaceHostType };
  }
  const firstHostType = compiled.serviceHosts[change.service]?.[0];
  const spec =
    firstHostType === undefined ? undefined : compiled.hostTypes[firstHostType]?.services[change.service];
  if (!spec) return undefined;
  return {
    ...common,
    version: spec.version,
    ...(spec.config !== undefined && Object.keys(spec.config).length > 0
      ? { config: { ...spec.config } }
      : {}),
  };
}

/**
 * Derived, never random: the time, the stream version it is requested at and what it rolls, so a retried
 * decision names the same rollout (ids sort by time like the API's `r-…` ones).
 */
function declaredRolloutId(at: Date, streamVersion: number, change: DeclaredChange): string {
  const what = change.replaceHostType !== undefined ? `replace-${change.replaceHostType}` : change.service;
  return `r-${at.getTime().toString(36).padStart(9, '0')}-d${streamVersion}-${what}`;
}

/**
 * A declared rollout that does not succeed (reverting, failed) gives its service (or host type) the spec it
 * had back in the definition, so hosts launched from now on start as the reverted hosts run, never mixed
 * with them. Decided again on each later status, it is then the same definition and appends nothing.
 */
function restoredAfterFailure(
  state: GroupState,
  active: ActiveRollout,
  status: RolloutStatus,
  at: Date,
): NewEvent<GroupEvent> | undefined {
  const { request } = active;
  const failing = status === 'reverting' || (isFinalRolloutStatus(status) && status !== 'succeeded');
  if (!failing || request.cause?.kind !== 'declared' || !request.from || !state.definition) return undefined;
  const restored = definitionRestored(state.definition, request);
  if (sameDefinition(state.definition, restored) || !compiles(restored, state.streamVersion + 2))
    return undefined;
  return {
    type: 'GroupDefined',
    eventId: `rollout#${active.id}#restored`,
    data: {
      definition: restored,
      source: 'json',
      definedAt: at.toISOString(),
      rolloutId: active.id,
      restored: true,
    },
  };
}

/** The definition with the service's (or the replaced host type's launch) spec as the rollout found it. */
export function definitionRestored(
  definition: GroupDefinition,
  rollout: Pick<RolloutRequest, 'service' | 'replaceHostType'> & { from?: RolloutFrom },
): GroupDefinition {
  const next = structuredClone(definition);
  const from = rollout.from;
  if (!from) return next;
  if (rollout.replaceHostType !== undefined) {
    const type = next.hostTypes[rollout.replaceHostType];
    if (!type || !from.launch) return next;
    type.instanceType = from.launch.instanceType;
    type.roles = [...from.launch.roles];
    if (from.launch.image !== undefined) type.image = from.launch.image;
    else delete type.image;
    if (from.launch.launchTemplate !== undefined) type.launchTemplate = from.launch.launchTemplate;
    else delete type.launchTemplate;
    return next;
  }
  for (const type of Object.values(next.hostTypes)) {
    const spec = type.services[rollout.service];
    if (!spec) continue;
    if (from.version !== undefined) spec.version = from.version;
    if (from.config !== undefined) spec.config = { ...from.config };
    else delete spec.config;
    if (from.stopped) spec.stopped = true;
    else delete spec.stopped;
  }
  return next;
}

function requestRollout(
  name: string,
  state: GroupState,
  command: Extract<GroupCommand, { type: 'RequestRollout' }>,
): GroupDecision {
  const { request, rolloutId } = command;
  const operation = request.operation ?? 'update';
  const changes = request.version !== undefined || request.config !== undefined;
  if (operation === 'update' && request.replaceHostType === undefined && !changes) {
    throw new ValidationError('a rollout needs a version or a config (or both)', {
      fields: ['version', 'config'],
    });
  }
  if (operation !== 'update' && changes) {
    throw new ValidationError(`a ${operation} rollout takes neither a version nor a config`, {
      fields: ['version', 'config'],
      operation,
    });
  }
  const select = request.select ?? 'all';
  checkSelector(select);
  existing(name, state);
  if (!state.running) {
    throw new ConflictError(
      `group "${name}" is not running: start it, or change the service's version in its definition`,
      { group: name, running: false, reason: 'group-not-running' },
    );
  }
  const compiled = state.compiled;
  if (!compiled) throw new Error('a group that exists has a compiled definition');
  const hostTypes = compiled.serviceHosts[request.service] ?? [];
  const firstHostType = hostTypes[0];
  if (firstHostType === undefined) {
    const services = Object.keys(compiled.serviceHosts).sort();
    const message = `group "${name}" runs no service "${request.service}"; its services are ${services.join(', ')}`;
    const details = { field: 'service', service: request.service, services };
    // A service operation names the service in its path: an unknown one is a resource that is not there.
    if (operation !== 'update') throw new NotFoundError(message, { group: name, ...details });
    throw new ValidationError(message, details);
  }
  if (state.activeRollout)
    throw activeRolloutConflict(name, state.activeRollout.id, statusOf(state.activeRollout));
  if (operation === 'remove' && state.definition) checkRemovable(name, state.definition, request.service);
  const spec = compiled.hostTypes[firstHostType]?.services[request.service];
  const previousVersion = spec?.version;
  const replacedType =
    request.replaceHostType === undefined ? undefined : state.definition?.hostTypes[request.replaceHostType];
  const from: RolloutFrom | undefined = replacedType
    ? { launch: launchSpecOf(replacedType) }
    : spec && {
        version: spec.version,
        ...(spec.config !== undefined ? { config: { ...spec.config } } : {}),
        ...(spec.stopped ? { stopped: true as const } : {}),
      };
  const requested: RolloutRequested['data'] = {
    service: request.service,
    ...(request.version !== undefined ? { version: request.version } : {}),
    ...(request.config !== undefined ? { config: request.config } : {}),
    select,
    ...(operation !== 'update' ? { operation } : {}),
    ...(request.replaceHostType !== undefined ? { replaceHostType: request.replaceHostType } : {}),
    ...(request.revertOf !== undefined ? { revertOf: request.revertOf } : {}),
    ...(request.cause !== undefined ? { cause: request.cause } : {}),
    rolloutId,
    requestedAt: command.at.toISOString(),
    ...(previousVersion !== undefined ? { previousVersion } : {}),
    ...(from ? { from } : {}),
  };
  return decided(
    { kind: 'rollout-requested', requested },
    { type: 'RolloutRequested', eventId: `rollout#${rolloutId}#requested`, data: requested },
  );
}

/**
 * A rollout succeeded: records it and, when it covered the whole group, makes its service version/config the
 * group's definition in the same append (a GroupDefined naming the rollout), so hosts launched later start on
 * it and the next reconcile sees nothing to change. Applied to the definition as it is now, so a change
 * accepted while the rollout ran (a count, another service) stays. Recorded only while the stream names this
 * rollout active, so a retried or late adoption never overwrites a definition written after it.
 */
function adoptRollout(
  state: GroupState,
  command: Extract<GroupCommand, { type: 'AdoptRollout' }>,
): GroupDecision {
  const active = state.activeRollout;
  if (active?.id !== command.rolloutId)
    return nothing({ kind: 'rollout-adopted', recorded: false, adopted: false });
  const version = state.streamVersion + 1;
  const { definition } = state;
  const after =
    definition && coversWholeGroup(active.request) ? definitionAfter(definition, active.request) : undefined;
  const adopted = after && !sameDefinition(definition, after) && compiles(after, version) ? after : undefined;
  const at = command.at;
  const events: NewEvent<GroupEvent>[] = [];
  if (adopted) {
    events.push({
      type: 'GroupDefined',
      eventId: `rollout#${active.id}#adopted`,
      data: { definition: adopted, source: 'json', definedAt: at.toISOString(), rolloutId: active.id },
    });
  }
  events.push(statusChanged(active.id, 'succeeded', command.rolloutVersion, at));
  const next = nextDeclared(state, events, at);
  if (next) events.push(next.event);
  return {
    events,
    outcome: {
      kind: 'rollout-adopted',
      recorded: true,
      adopted: adopted !== undefined,
      definitionVersion: adopted ? version : state.definitionVersion,
      ...(next ? { next: next.requested } : {}),
    },
  };
}

/**
 * A service leaves the definition only when nothing else needs it: no service depends on it and no load
 * balancer balances it (the definition without it must compile).
 */
function checkRemovable(name: string, definition: GroupDefinition, service: string): void {
  const dependents = Object.entries(definition.dependencies)
    .filter(([other, needs]) => other !== service && needs.includes(service))
    .map(([other]) => other)
    .sort();
  const balancers = Object.entries(definition.hostTypes)
    .filter(([, type]) => type.balances?.includes(service))
    .map(([type]) => type)
    .sort();
  if (dependents.length === 0 && balancers.length === 0) {
    try {
      compiledAt(definitionAfter(definition, { service, operation: 'remove' }), 0);
      return;
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      throw new ConflictError(
        `service "${service}" of group "${name}" cannot be removed: without it ${error.message}`,
        { group: name, service, reason: 'service-needed' },
        { cause: error },
      );
    }
  }
  throw new ConflictError(
    `service "${service}" of group "${name}" cannot be removed: ${[
      dependents.length > 0 ? `${dependents.join(', ')} depend on it` : undefined,
      balancers.length > 0 ? `host types ${balancers.join(', ')} balance it` : undefined,
    ]
      .filter((part) => part !== undefined)
      .join('; ')}`,
    { group: name, service, dependents, balancers, reason: 'service-needed' },
  );
}

function statusChanged(
  rolloutId: string,
  status: RolloutStatus,
  rolloutVersion: number,
  at: Date,
  reason?: string,
): NewEvent<GroupEvent> {
  return {
    type: 'RolloutStatusChanged',
    eventId: `${rolloutId}.${status}.${rolloutVersion}`,
    data: {
      rolloutId,
      status,
      at: at.toISOString(),
      rolloutVersion,
      ...(reason !== undefined ? { reason } : {}),
    },
  };
}

/* ───────────── rules ───────────── */

function statusOf(active: ActiveRollout): RolloutStatus {
  return active.status ?? 'pending';
}

/** A reverting rollout can no longer be aborted: it is on its way out already. */
function wayOut(status: RolloutStatus): string {
  return status === 'reverting' ? 'wait for it to finish reverting' : 'wait for it to finish, or abort it';
}

/** Refuses a new rollout while another holds the group, naming it and where it stands. */
function activeRolloutConflict(group: string, rolloutId: string, status: RolloutStatus): ConflictError {
  return new ConflictError(`rollout ${rolloutId} of group "${group}" is ${status}: ${wayOut(status)}`, {
    group,
    rolloutId,
    rolloutStatus: status,
    reason: 'rollout-active',
  });
}

/**
 * Only a rollout that reached every host of the service may become the definition: after a canary
 * (`select: 2`, `ids(…)`, `version=1.*`) the rest of the group still runs the old version, which the
 * definition must go on naming.
 */
export function coversWholeGroup(rollout: Pick<RolloutRequest, 'select'>): boolean {
  const selector = parseSelector(rollout.select ?? 'all');
  return selector.filters.length === 0 && selector.sizes.every((size) => size.kind === 'all');
}

/** The definition with the rollout's version and config in every host type that runs its service. */
export function definitionAfter(
  definition: GroupDefinition,
  rollout: Pick<RolloutRequest, 'service' | 'version' | 'config' | 'operation'>,
): GroupDefinition {
  const next = structuredClone(definition);
  const operation = rollout.operation ?? 'update';
  for (const hostType of Object.values(next.hostTypes)) {
    const spec = hostType.services[rollout.service];
    if (!spec) continue;
    if (operation === 'remove') {
      delete hostType.services[rollout.service];
      continue;
    }
    if (operation === 'stop') spec.stopped = true;
    if (operation === 'start') delete spec.stopped;
    if (rollout.version !== undefined) spec.version = rollout.version;
    if (rollout.config !== undefined) spec.config = { ...spec.config, ...rollout.config };
  }
  if (operation === 'remove') {
    delete next.dependencies[rollout.service];
    for (const [service, needs] of Object.entries(next.dependencies))
      next.dependencies[service] = needs.filter((need) => need !== rollout.service);
  }
  return next;
}

/** What a host type runs of `service`, comparable as text: its version and config. */
function serviceSpecs(definition: GroupDefinition, service: string): Map<string, string> {
  const specs = new Map<string, string>();
  for (const [hostType, spec] of Object.entries(definition.hostTypes)) {
    const runs = spec.services[service];
    if (runs) specs.set(hostType, canonicalJson({ version: runs.version, config: runs.config ?? {} }));
  }
  return specs;
}

/**
 * Whether `after` changes what `service` is (its version or config) anywhere: a host type that ran it runs
 * another version or config, or a new host type runs one no host type ran. Counts, host types that come or
 * go with what ran before, and every other service are not a change of it.
 */
export function changesService(before: GroupDefinition, after: GroupDefinition, service: string): boolean {
  const old = serviceSpecs(before, service);
  const known = new Set(old.values());
  for (const [hostType, spec] of serviceSpecs(after, service)) {
    const was = old.get(hostType);
    if (was === undefined ? !known.has(spec) : was !== spec) return true;
  }
  return false;
}

/** A rollout the reconcile ran to the end is not refused for its definition: should it not compile, nothing is adopted. */
function compiles(definition: GroupDefinition, version: number): boolean {
  try {
    compiledAt(definition, version);
    return true;
  } catch (error) {
    if (error instanceof ValidationError) return false;
    throw error;
  }
}

function sameDefinition(a: GroupDefinition | undefined, b: GroupDefinition): boolean {
  return a !== undefined && canonicalJson(a) === canonicalJson(b);
}

function existing(name: string, state: GroupState): void {
  if (!state.exists) throw groupNotFound(name);
}

export function groupNotFound(name: string): NotFoundError {
  return new NotFoundError(`group "${name}" not found`, { group: name });
}

function checkSelector(select: string): void {
  try {
    parseSelector(select);
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    throw new ValidationError(
      `select: ${error.message}`,
      { field: 'select', ...error.details },
      { cause: error },
    );
  }
}

function describeVersions(versions: readonly number[]): string {
  return versions.length === 0 ? 'no version' : versions.join(' or ');
}

function checkPreconditions(
  name: string,
  state: GroupState,
  preconditions: DefinitionPreconditions = {},
): void {
  const current = state.exists ? state.definitionVersion : undefined;
  const { matching, notMatching } = preconditions;
  if (matching) {
    const { versions } = matching;
    const holds = current !== undefined && (versions === undefined || versions.includes(current));
    if (!holds) {
      throw new StaleVersionError(
        current === undefined
          ? `group "${name}" does not exist`
          : `group "${name}" is at definition version ${current}, not ${describeVersions(versions ?? [])}`,
        {
          group: name,
          precondition: 'matching',
          ...(versions !== undefined ? { versions: [...versions] } : {}),
          current: current ?? null,
        },
      );
    }
  }
  if (notMatching && current !== undefined) {
    const { versions } = notMatching;
    if (versions === undefined || versions.includes(current)) {
      throw new StaleVersionError(`group "${name}" exists at definition version ${current}`, {
        group: name,
        precondition: 'not-matching',
        ...(versions !== undefined ? { versions: [...versions] } : {}),
        current,
      });
    }
  }
}

function nothing(outcome: GroupOutcome): GroupDecision {
  return { events: [], outcome };
}

function decided(outcome: GroupOutcome, ...events: NewEvent<GroupEvent>[]): GroupDecision {
  return { events, outcome };
}
