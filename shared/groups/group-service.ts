/**
 * Defining, starting, stopping and deleting groups, and requesting and steering rollouts: decisions made on
 * the group's stream, recorded there, projected into 'group' and 'rollout' documents, and handed to the
 * reconcile loop. Ports only: no AWS SDK here.
 *
 * Requests per command (DynamoDB): a group command reads the group document (1 GetItem) and the events after
 * the version it projects (1 Query, normally empty), appends one event (1 PutItem) and rewrites the document
 * (1 PutItem): 4. A rollout request adds the rollout document (1 PutItem) and, while another rollout is
 * recorded as active, one GetItem of it. A rollout command reads and rewrites the rollout document and
 * appends to the group stream (GetItem, PutItem, Query, PutItem). Reads of one document are 1 GetItem.
 */
import { canonicalJson } from '../canonical.ts';
import { ConflictError, FleetfoldError, NotFoundError, ValidationError } from '../errors.ts';
import type { NewEvent, RecordedEvent } from '../events.ts';
import type { EventStore } from '../ports.ts';
import { compileGroup, type DefinitionFormat, parseGroupDefinition } from './compile.ts';
import { type GroupEvent, groupStream, type RolloutRequested } from './events.ts';
import {
  type ActiveRollout,
  evolveGroup,
  type GroupDocument,
  type GroupState,
  isFinalRolloutStatus,
  NO_GROUP,
  stateOfDocument,
} from './group-state.ts';
import type { CompiledGroup, GroupDefinition, Rollout, RolloutRequest } from './model.ts';
import type { DocumentStore, ReconcileStarter, StoredDocument } from './ports.ts';
import { nextRolloutStatus, type RolloutCommand } from './rollout-status.ts';
import { parseSelector } from './selectors.ts';

export interface GroupServiceDeps {
  events: EventStore;
  documents: DocumentStore;
  reconcile: ReconcileStarter;
  now: () => Date;
  /** Random lowercase letters and digits; makes rollout ids unique within one millisecond. */
  newId: () => string;
}

export type { DefinitionFormat };

/** Conditional-request headers as the client sent them (HTTP semantics, ETag = definition version). */
export interface Preconditions {
  ifMatch?: string;
  ifNoneMatch?: string;
}

export interface DefineOutcome {
  outcome: 'created' | 'updated' | 'unchanged';
  group: GroupDocument;
  /** Set when the group runs and the new definition started a reconcile. */
  executionId?: string;
}

export interface RunOutcome {
  group: string;
  running: boolean;
  executionId: string;
  /** False when the group already was in that state (the reconcile run is the one that state started). */
  changed: boolean;
}

export interface RolloutOutcome {
  rollout: Rollout;
  executionId?: string;
}

/** HTTP 412: a conditional request whose condition does not hold. */
export class PreconditionFailedError extends FleetfoldError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('conflict', 412, message, details);
  }
}

/** Somebody appended to the stream between our read and our write: decide again on what they wrote. */
class StreamRaced extends Error {
  readonly conflict: ConflictError;

  constructor(conflict: ConflictError) {
    super(conflict.message, { cause: conflict });
    this.conflict = conflict;
  }
}

const DECIDE_ATTEMPTS = 5;
const PROJECT_ATTEMPTS = 5;
const APPEND_ATTEMPTS = 8;
/** The event store's largest page: catching up reads few events, rebuilding a lost projection many. */
const CATCH_UP_PAGE = 1000;

interface Loaded {
  document?: StoredDocument<GroupDocument>;
  state: GroupState;
}

export class GroupService {
  constructor(private readonly deps: GroupServiceDeps) {}

  /* ───────────── groups ───────────── */

  async defineGroup(
    name: string,
    text: string,
    format: DefinitionFormat,
    preconditions: Preconditions = {},
  ): Promise<DefineOutcome> {
    const definition = parseGroupDefinition(text, format);
    if (definition.name !== name) {
      throw new ValidationError(
        `the path names group "${name}" but the definition is named "${definition.name}": they must be equal`,
        { parameter: 'name', path: name, definitionName: definition.name },
      );
    }
    const decided = await this.decide(name, async (loaded) => {
      checkPreconditions(name, loaded.state, preconditions);
      if (loaded.state.exists && sameDefinition(loaded.state.definition, definition)) {
        return { outcome: 'unchanged' as const, loaded, state: loaded.state, compiled: undefined };
      }
      const version = loaded.state.streamVersion + 1;
      // Compiled before anything is written: an invalid definition leaves no trace in the stream.
      const compiled = compileGroup(definition, version);
      const at = this.deps.now();
      const state = await this.append(name, loaded, {
        type: 'GroupDefined',
        eventId: `define#${name}#${version}`,
        data: { definition, source: format, definedAt: at.toISOString() },
      });
      return {
        outcome: loaded.state.exists ? ('updated' as const) : ('created' as const),
        loaded,
        state,
        compiled,
      };
    });
    const { outcome, loaded, state } = decided;
    const group = documentOf(state, decided.compiled ?? compiledOf(state, loaded.document));
    if (outcome !== 'unchanged') await this.project(name, loaded, group);
    if (!state.running) return { outcome, group };
    // Unchanged asks again for the same run: a definition recorded before a failed start is repaired.
    const { executionId } = await this.deps.reconcile.start({
      group: name,
      reason: 'definition-changed',
      dedupeKey: `group-${name}-def-${state.definitionVersion}`,
    });
    return { outcome, group, executionId };
  }

  /** One GetItem: the projection as last written (a command catches it up with the stream). */
  async getGroup(name: string): Promise<StoredDocument<GroupDocument>> {
    checkGroupName(name);
    const document = await this.deps.documents.get<GroupDocument>('group', name);
    if (!document) throw groupNotFound(name);
    return document;
  }

  listGroups(limit: number, cursor?: string) {
    return this.deps.documents.list<GroupDocument>('group', limit, cursor);
  }

  startGroup(name: string): Promise<RunOutcome> {
    return this.run(name, true);
  }

  stopGroup(name: string): Promise<RunOutcome> {
    return this.run(name, false);
  }

  async deleteGroup(name: string, preconditions: Preconditions = {}): Promise<void> {
    const { loaded, state } = await this.decide(name, async (loaded) => {
      if (!loaded.state.exists) throw groupNotFound(name);
      checkPreconditions(name, loaded.state, preconditions);
      if (loaded.state.running) {
        throw new ConflictError(
          `group "${name}" is running: stop it first (POST /groups/${name}/stop), then delete it`,
          { group: name, running: true, stop: `/groups/${name}/stop` },
        );
      }
      const state = await this.append(name, loaded, {
        type: 'GroupDeleted',
        eventId: `delete#${name}#${loaded.state.streamVersion + 1}`,
        data: { deletedAt: this.deps.now().toISOString() },
      });
      return { loaded, state };
    });
    await this.project(name, loaded, documentOrNothing(state, loaded.document));
  }

  /* ───────────── rollouts ───────────── */

  async requestRollout(name: string, request: RolloutRequest): Promise<RolloutOutcome> {
    if (request.version === undefined && request.config === undefined) {
      throw new ValidationError('a rollout needs a version or a config (or both)', {
        fields: ['version', 'config'],
      });
    }
    const select = request.select ?? 'all';
    checkSelector(select);
    const { loaded, state, data } = await this.decide(name, async (loaded) => {
      if (!loaded.state.exists) throw groupNotFound(name);
      if (!loaded.state.running) {
        throw new ConflictError(
          `group "${name}" is not running: start it (POST /groups/${name}/start), or change the service's version in its definition`,
          { group: name, running: false, start: `/groups/${name}/start` },
        );
      }
      const compiled = compiledOf(loaded.state, loaded.document);
      const hostTypes = compiled.serviceHosts[request.service] ?? [];
      const firstHostType = hostTypes[0];
      if (firstHostType === undefined) {
        const services = Object.keys(compiled.serviceHosts).sort();
        throw new ValidationError(
          `group "${name}" runs no service "${request.service}"; its services are ${services.join(', ')}`,
          { field: 'service', service: request.service, services },
        );
      }
      const blocking = await this.activeRollout(loaded.state.activeRollout, name);
      if (blocking) {
        throw new ConflictError(
          `rollout ${blocking.id} of group "${name}" is ${blocking.status}: wait for it to finish, or abort it (POST /rollouts/${blocking.id}/abort)`,
          {
            group: name,
            rolloutId: blocking.id,
            rolloutStatus: blocking.status,
            rollout: `/rollouts/${blocking.id}`,
          },
        );
      }
      const now = this.deps.now();
      const rolloutId = newRolloutId(now, this.deps.newId());
      const previousVersion = compiled.hostTypes[firstHostType]?.services[request.service]?.version;
      const data: RolloutRequested['data'] = {
        service: request.service,
        ...(request.version !== undefined ? { version: request.version } : {}),
        ...(request.config !== undefined ? { config: request.config } : {}),
        select,
        rolloutId,
        requestedAt: now.toISOString(),
        ...(previousVersion !== undefined ? { previousVersion } : {}),
      };
      const state = await this.append(name, loaded, {
        type: 'RolloutRequested',
        eventId: `rollout#${rolloutId}#requested`,
        data,
      });
      return { loaded, state, data };
    });
    // The rollout document comes after the event that decided it, so a lost race leaves no orphan behind.
    const rollout = newRollout(name, data);
    await this.deps.documents.put('rollout', rollout.id, rollout, 0, this.deps.now());
    await this.project(name, loaded, documentOf(state, compiledOf(state, loaded.document)));
    const { executionId } = await this.deps.reconcile.start({
      group: name,
      reason: 'rollout',
      rolloutId: rollout.id,
      dedupeKey: `rollout-${rollout.id}`,
    });
    return { rollout, executionId };
  }

  async getRollout(id: string): Promise<StoredDocument<Rollout>> {
    const document = await this.deps.documents.get<Rollout>('rollout', id);
    if (!document) throw new NotFoundError(`rollout "${id}" not found`, { rolloutId: id });
    return document;
  }

  /** Pause, resume or abort: a guarded write of the rollout document (the reconcile writes it too), then the event. */
  async commandRollout(id: string, command: RolloutCommand): Promise<RolloutOutcome> {
    let saved: StoredDocument<Rollout> | undefined;
    for (let attempt = 1; !saved; attempt += 1) {
      const current = await this.getRollout(id);
      const status = nextRolloutStatus(current.body, command);
      const now = this.deps.now();
      try {
        saved = await this.deps.documents.put(
          'rollout',
          id,
          { ...current.body, status, updatedAt: now.toISOString() },
          current.version,
          now,
        );
      } catch (error) {
        if (!(error instanceof ConflictError) || attempt >= DECIDE_ATTEMPTS) throw error;
      }
    }
    const rollout = saved.body;
    await this.appendWithRetry(groupStream(rollout.group), {
      type: 'RolloutStatusChanged',
      eventId: `rollout#${id}#${rollout.status}#${saved.version}`,
      data: { rolloutId: id, status: rollout.status, at: rollout.updatedAt, reason: `operator: ${command}` },
    });
    if (command !== 'resume') return { rollout };
    // The run that was paused waits at its check and goes on by itself; only a run that is over needs a new one.
    if (runStillAlive(rollout, this.deps.now())) return { rollout };
    const { executionId } = await this.deps.reconcile.start({
      group: rollout.group,
      reason: 'rollout',
      rolloutId: id,
      dedupeKey: `rollout-${id}-resume-${saved.version}`,
    });
    return { rollout, executionId };
  }

  /**
   * A rollout succeeded: records it and, when it covered the whole group, makes its service version/config
   * the group's definition in the same append (a GroupDefined naming the rollout), so hosts launched later
   * start on it and the next reconcile sees nothing to change. The definition version, and so the ETag,
   * moves: an If-Match on the old one fails, as it should, since the definition changed. Recorded only while
   * the stream still names this rollout active, so a retried or late Finish never overwrites a definition
   * written after it. No reconcile is started: the hosts already run what the definition now says.
   */
  async recordRolloutSucceeded(rollout: Rollout): Promise<RolloutSucceededOutcome> {
    const name = rollout.group;
    const decided = await this.decide(name, async (loaded) => {
      if (loaded.state.activeRollout?.id !== rollout.id) return undefined;
      const at = this.deps.now().toISOString();
      const definition = loaded.state.definition;
      const adopted =
        definition && coversWholeGroup(rollout) ? definitionAfter(definition, rollout) : undefined;
      const version = loaded.state.streamVersion + 1;
      const compiled =
        adopted && !sameDefinition(definition, adopted) ? compileOrNothing(adopted, version) : undefined;
      const events: NewEvent<GroupEvent>[] = [];
      if (adopted && compiled) {
        events.push({
          type: 'GroupDefined',
          eventId: `rollout#${rollout.id}#adopted`,
          data: { definition: adopted, source: 'json', definedAt: at, rolloutId: rollout.id },
        });
      }
      events.push(succeededEvent(rollout.id, at));
      const state = await this.append(name, loaded, ...events);
      return { loaded, state, compiled };
    });
    if (!decided) return { recorded: false, adopted: false };
    const { loaded, state, compiled } = decided;
    await this.project(name, loaded, documentOf(state, compiled ?? compiledOf(state, loaded.document)));
    return { recorded: true, adopted: compiled !== undefined, definitionVersion: state.definitionVersion };
  }

  /* ───────────── the stream and its projection ───────────── */

  private async run(name: string, running: boolean): Promise<RunOutcome> {
    const { loaded, state, changed } = await this.decide(name, async (loaded) => {
      if (!loaded.state.exists) throw groupNotFound(name);
      if (loaded.state.running === running) return { loaded, state: loaded.state, changed: false };
      const version = loaded.state.streamVersion + 1;
      const at = this.deps.now().toISOString();
      const state = await this.append(
        name,
        loaded,
        running
          ? { type: 'GroupStarted', eventId: `start#${name}#${version}`, data: { startedAt: at } }
          : { type: 'GroupStopped', eventId: `stop#${name}#${version}`, data: { stoppedAt: at } },
      );
      return { loaded, state, changed: true };
    });
    if (changed) await this.project(name, loaded, documentOf(state, compiledOf(state, loaded.document)));
    // Asking again names the same run: a start that reached the stream but not the state machine is repaired.
    const { executionId } = await this.deps.reconcile.start({
      group: name,
      reason: running ? 'group-started' : 'group-stopped',
      dedupeKey: `group-${name}-${running ? 'start' : 'stop'}-${state.runVersion}`,
    });
    return { group: name, running, executionId, changed };
  }

  /** Loads, decides and appends; when another writer appended first, decides again on the new state. */
  private async decide<T>(name: string, decision: (loaded: Loaded) => Promise<T>): Promise<T> {
    checkGroupName(name);
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await decision(await this.load(name));
      } catch (error) {
        if (!(error instanceof StreamRaced)) throw error;
        if (attempt >= DECIDE_ATTEMPTS) throw error.conflict;
      }
    }
  }

  /** The projection plus whatever the stream holds beyond it (a crash between append and projection). */
  private async load(name: string): Promise<Loaded> {
    const document = await this.deps.documents.get<GroupDocument>('group', name);
    let state = document ? stateOfDocument(document.body) : NO_GROUP;
    let cursor: string | undefined;
    do {
      const page = await this.deps.events.read<GroupEvent>(groupStream(name), {
        fromVersion: state.streamVersion + 1,
        limit: CATCH_UP_PAGE,
        cursor,
      });
      for (const event of page.events) state = evolveGroup(state, event);
      cursor = page.next;
    } while (cursor !== undefined);
    return document ? { document, state } : { state };
  }

  private async append(name: string, loaded: Loaded, ...events: NewEvent<GroupEvent>[]): Promise<GroupState> {
    const stream = groupStream(name);
    const at = this.deps.now();
    const first = loaded.state.streamVersion + 1;
    try {
      await this.deps.events.append<GroupEvent>(stream, loaded.state.streamVersion, events, at);
    } catch (error) {
      if (error instanceof ConflictError) throw new StreamRaced(error);
      throw error;
    }
    return events.reduce(
      (state, event, index) =>
        evolveGroup(state, {
          ...event,
          stream,
          version: first + index,
          recordedAt: at.toISOString(),
        } as RecordedEvent<GroupEvent>),
      loaded.state,
    );
  }

  /**
   * Writes the projection with a version guard. When the guard fails somebody else projected meanwhile:
   * reload, and if the stored projection is behind the stream, write the fresher fold, so racing writers
   * converge on the newest state and none overwrites a newer one with an older.
   */
  private async project(name: string, loaded: Loaded, target: GroupDocument | undefined): Promise<void> {
    let stored = loaded.document;
    let wanted = target;
    for (let attempt = 1; ; attempt += 1) {
      try {
        if (wanted)
          await this.deps.documents.put('group', name, wanted, stored?.version ?? 0, this.deps.now());
        else if (stored) await this.deps.documents.delete('group', name, stored.version);
        return;
      } catch (error) {
        if (!(error instanceof ConflictError) || attempt >= PROJECT_ATTEMPTS) throw error;
      }
      const fresh = await this.load(name);
      if (fresh.document && fresh.document.body.streamVersion >= fresh.state.streamVersion) return;
      stored = fresh.document;
      wanted = documentOrNothing(fresh.state, fresh.document);
    }
  }

  private async appendWithRetry(stream: string, event: NewEvent<GroupEvent>): Promise<number> {
    for (let attempt = 1; ; attempt += 1) {
      const current = await this.deps.events.currentVersion(stream);
      try {
        return await this.deps.events.append<GroupEvent>(stream, current, [event], this.deps.now());
      } catch (error) {
        if (!(error instanceof ConflictError) || attempt >= APPEND_ATTEMPTS) throw error;
      }
    }
  }

  /**
   * The rollout the stream says is active, if its document agrees it has not finished (the reconcile
   * finishes rollouts in the document). A document lost between the append and its write is rebuilt.
   */
  private async activeRollout(active: ActiveRollout | undefined, name: string): Promise<Rollout | undefined> {
    if (!active) return undefined;
    let document = await this.deps.documents.get<Rollout>('rollout', active.id);
    if (!document) {
      const rebuilt = newRollout(name, active.request);
      try {
        document = await this.deps.documents.put('rollout', active.id, rebuilt, 0, this.deps.now());
      } catch (error) {
        if (!(error instanceof ConflictError)) throw error;
        document = await this.getRollout(active.id);
      }
    }
    return isFinalRolloutStatus(document.body.status) ? undefined : document.body;
  }
}

export interface RolloutSucceededOutcome {
  /** False when the stream does not name the rollout active (recorded before, or never requested there). */
  recorded: boolean;
  /** True when the group's definition now names the rollout's version/config. */
  adopted: boolean;
  definitionVersion?: number;
}

/** What the reconcile's Finish step may do to a group: it starts no runs and makes no ids. */
export type GroupRecorder = Pick<GroupService, 'recordRolloutSucceeded'>;

export function groupRecorder(deps: Pick<GroupServiceDeps, 'events' | 'documents' | 'now'>): GroupRecorder {
  return new GroupService({
    ...deps,
    reconcile: {
      start: () => Promise.reject(new Error('the group recorder starts no reconcile runs')),
    },
    newId: () => {
      throw new Error('the group recorder makes no ids');
    },
  });
}

export function succeededEvent(rolloutId: string, at: string): NewEvent<GroupEvent> {
  return {
    type: 'RolloutStatusChanged',
    eventId: `${rolloutId}.succeeded`,
    data: { rolloutId, status: 'succeeded', at },
  };
}

/**
 * Only a rollout that reached every host of the service may become the definition: after a canary
 * (`select: 2`, `id in (…)`, `version=1.*`) the rest of the group still runs the old version, which the
 * definition must go on naming.
 */
function coversWholeGroup(rollout: Rollout): boolean {
  const selector = parseSelector(rollout.select ?? 'all');
  return selector.filters.length === 0 && selector.sizes.every((size) => size.kind === 'all');
}

/** The definition with the rollout's version and config in every host type that runs its service. */
export function definitionAfter(definition: GroupDefinition, rollout: Rollout): GroupDefinition {
  const next = structuredClone(definition);
  for (const hostType of Object.values(next.hostTypes)) {
    const spec = hostType.services[rollout.service];
    if (!spec) continue;
    if (rollout.version !== undefined) spec.version = rollout.version;
    if (rollout.config !== undefined) spec.config = { ...spec.config, ...rollout.config };
  }
  return next;
}

/** A rollout the reconcile ran to the end is not refused here; should compiling still fail, nothing is adopted. */
function compileOrNothing(definition: GroupDefinition, version: number): CompiledGroup | undefined {
  try {
    return compileGroup(definition, version);
  } catch (error) {
    if (error instanceof ValidationError) return undefined;
    throw error;
  }
}

/* ───────────── helpers ───────────── */

const GROUP_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export function checkGroupName(name: string): void {
  if (!GROUP_NAME.test(name)) {
    throw new ValidationError(
      `"${name}" is not a group name: lowercase letters, digits, ".", "_" or "-", starting with a letter or digit, at most 64`,
      { parameter: 'name' },
    );
  }
}

function groupNotFound(name: string): NotFoundError {
  return new NotFoundError(`group "${name}" not found`, { group: name });
}

function sameDefinition(a: GroupDefinition | undefined, b: GroupDefinition): boolean {
  return a !== undefined && canonicalJson(a) === canonicalJson(b);
}

function compiledOf(state: GroupState, document: StoredDocument<GroupDocument> | undefined): CompiledGroup {
  const stored = document?.body;
  if (stored && stored.definitionVersion === state.definitionVersion) return stored.compiled;
  if (!state.definition) throw new Error('compiledOf needs a defined group');
  return compileGroup(state.definition, state.definitionVersion);
}

function documentOf(state: GroupState, compiled: CompiledGroup): GroupDocument {
  if (!state.definition) throw new Error('documentOf needs a defined group');
  return {
    definition: state.definition,
    compiled,
    running: state.running,
    definitionVersion: state.definitionVersion,
    streamVersion: state.streamVersion,
    runVersion: state.runVersion,
    ...(state.activeRollout ? { activeRollout: state.activeRollout } : {}),
  };
}

function documentOrNothing(
  state: GroupState,
  document: StoredDocument<GroupDocument> | undefined,
): GroupDocument | undefined {
  return state.exists ? documentOf(state, compiledOf(state, document)) : undefined;
}

/**
 * The ETag names the definition version: it moves when an operator defines the group and when a succeeded
 * rollout becomes its definition, so a read-modify-write from before a rollout cannot undo it unnoticed.
 */
export function etagOf(definitionVersion: number): string {
  return `"${definitionVersion}"`;
}

/** Entity tags of an If-Match / If-None-Match header; weak tags compare by their value. */
function entityTags(header: string): string[] {
  return header
    .split(',')
    .map((tag) => tag.trim().replace(/^W\//, ''))
    .filter((tag) => tag.length > 0);
}

function checkPreconditions(name: string, state: GroupState, preconditions: Preconditions): void {
  const current = state.exists ? etagOf(state.definitionVersion) : undefined;
  const { ifMatch, ifNoneMatch } = preconditions;
  if (ifMatch !== undefined) {
    const tags = entityTags(ifMatch);
    const matches = current !== undefined && (tags.includes('*') || tags.includes(current));
    if (!matches) {
      throw new PreconditionFailedError(
        current === undefined
          ? `If-Match ${ifMatch} cannot hold: group "${name}" does not exist`
          : `If-Match ${ifMatch} does not match the current definition version ${current} of group "${name}"`,
        { group: name, precondition: 'If-Match', expected: ifMatch, current: current ?? null },
      );
    }
  }
  if (ifNoneMatch !== undefined && current !== undefined) {
    const tags = entityTags(ifNoneMatch);
    if (tags.includes('*') || tags.includes(current)) {
      throw new PreconditionFailedError(
        `group "${name}" exists at definition version ${current}; If-None-Match ${ifNoneMatch} only lets a request through when it does not`,
        { group: name, precondition: 'If-None-Match', expected: ifNoneMatch, current },
      );
    }
  }
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

/** `r-` + milliseconds in base 36 (fixed width, so ids sort by time) + a random suffix. */
export function newRolloutId(now: Date, suffix: string): string {
  return `r-${now.getTime().toString(36).padStart(9, '0')}-${suffix}`;
}

/** A first run gets this long to take the rollout up before a resume presumes it lost. */
export const FIRST_RUN_GRACE_SECONDS = 30;

export function runStillAlive(rollout: Rollout, now: Date): boolean {
  return rollout.runAliveUntil !== undefined && Date.parse(rollout.runAliveUntil) > now.getTime();
}

function newRollout(group: string, data: RolloutRequested['data']): Rollout {
  const requestedAt = Date.parse(data.requestedAt);
  return {
    runAliveUntil: new Date(requestedAt + FIRST_RUN_GRACE_SECONDS * 1000).toISOString(),
    id: data.rolloutId,
    group,
    service: data.service,
    ...(data.version !== undefined ? { version: data.version } : {}),
    ...(data.config !== undefined ? { config: data.config } : {}),
    select: data.select ?? 'all',
    status: 'pending',
    ...(data.previousVersion !== undefined ? { previousVersion: data.previousVersion } : {}),
    createdAt: data.requestedAt,
    updatedAt: data.requestedAt,
    waves: [],
    hosts: { done: [], pending: [], failed: [] },
  };
}
