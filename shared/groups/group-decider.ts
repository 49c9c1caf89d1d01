/**
 * The group stream (`group#<name>`): its definitions, its lifecycle, the rollouts that hold it (mirrored from
 * their own streams) and its alarms. Pure: time, ids and the group's name come in through the command and
 * the context; what a command may not do is refused by throwing the domain error that says why.
 */
import { canonicalJson } from '../canonical.ts';
import type { Decider, Decision } from '../command/decider.ts';
import { ConflictError, NotFoundError, StaleVersionError, ValidationError } from '../errors.ts';
import type { NewEvent } from '../events.ts';
import type { DefinitionFormat } from './compile.ts';
import type { GroupEvent, RolloutRequested } from './events.ts';
import { type ActiveRollout, compiledAt, evolveGroup, type GroupState, NO_GROUP } from './group-state.ts';
import type { GroupDefinition, RolloutRequest, RolloutStatus } from './model.ts';
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
  | ({ type: 'RaiseAlarm'; at: Date } & Alarm);

export type GroupOutcome =
  | { kind: 'defined'; outcome: 'created' | 'updated' | 'unchanged' }
  | { kind: 'run'; changed: boolean }
  | { kind: 'deleted' }
  | { kind: 'rollout-requested'; requested: RolloutRequested['data'] }
  | { kind: 'rollout-status'; recorded: boolean }
  | AdoptOutcome
  | { kind: 'alarm'; raised: boolean };

export interface AdoptOutcome {
  kind: 'rollout-adopted';
  /** False when the stream does not name the rollout active (recorded before, or never requested here). */
  recorded: boolean;
  /** True when the group's definition now names the rollout's version/config. */
  adopted: boolean;
  definitionVersion?: number;
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
        return decided(
          { kind: 'rollout-status', recorded: true },
          statusChanged(
            command.rolloutId,
            command.status,
            command.rolloutVersion,
            command.at,
            command.reason,
          ),
        );
      }
      case 'AdoptRollout':
        return adoptRollout(state, command);
      case 'RaiseAlarm': {
        existing(name, state);
        if (state.recentAlarmIds.includes(command.alarmId)) return nothing({ kind: 'alarm', raised: false });
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
            },
          },
        );
      }
    }
  },
};

function define(name: string, state: GroupState, command: Extract<GroupCommand, { type: 'Define' }>) {
  checkPreconditions(name, state, command.preconditions);
  const { definition } = command;
  if (state.exists && sameDefinition(state.definition, definition))
    return nothing({ kind: 'defined', outcome: 'unchanged' });
  const active = state.activeRollout;
  if (active && state.definition && changesService(state.definition, definition, active.request.service)) {
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
  return decided(
    { kind: 'defined', outcome: state.exists ? 'updated' : 'created' },
    {
      type: 'GroupDefined',
      eventId: `define#${name}#${version}`,
      data: { definition, source: command.source, definedAt: command.at.toISOString() },
    },
  );
}

function requestRollout(
  name: string,
  state: GroupState,
  command: Extract<GroupCommand, { type: 'RequestRollout' }>,
): GroupDecision {
  const { request, rolloutId } = command;
  if (request.version === undefined && request.config === undefined) {
    throw new ValidationError('a rollout needs a version or a config (or both)', {
      fields: ['version', 'config'],
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
    throw new ValidationError(
      `group "${name}" runs no service "${request.service}"; its services are ${services.join(', ')}`,
      { field: 'service', service: request.service, services },
    );
  }
  if (state.activeRollout)
    throw activeRolloutConflict(name, state.activeRollout.id, statusOf(state.activeRollout));
  const previousVersion = compiled.hostTypes[firstHostType]?.services[request.service]?.version;
  const requested: RolloutRequested['data'] = {
    service: request.service,
    ...(request.version !== undefined ? { version: request.version } : {}),
    ...(request.config !== undefined ? { config: request.config } : {}),
    select,
    rolloutId,
    requestedAt: command.at.toISOString(),
    ...(previousVersion !== undefined ? { previousVersion } : {}),
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
  return {
    events,
    outcome: {
      kind: 'rollout-adopted',
      recorded: true,
      adopted: adopted !== undefined,
      definitionVersion: adopted ? version : state.definitionVersion,
    },
  };
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
  rollout: Pick<RolloutRequest, 'service' | 'version' | 'config'>,
): GroupDefinition {
  const next = structuredClone(definition);
  for (const hostType of Object.values(next.hostTypes)) {
    const spec = hostType.services[rollout.service];
    if (!spec) continue;
    if (rollout.version !== undefined) spec.version = rollout.version;
    if (rollout.config !== undefined) spec.config = { ...spec.config, ...rollout.config };
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
