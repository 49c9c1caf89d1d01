/**
 * What the API does with groups and rollouts: parses what it is given, runs the command on the group's or the
 * rollout's stream (shared/command: decide, conditional append, retry on a lost race, guarded projection),
 * and hands the group to the reconcile loop when the command calls for it. Ports only: no AWS SDK, no HTTP.
 *
 * Requests per command (DynamoDB): a group command reads the group document (1 GetItem) and the events after
 * the version it projects (1 Query, normally empty), appends one event (1 PutItem) and rewrites the document
 * (1 PutItem): 4. A rollout request adds the rollout's stream and document (1 Query, 2 PutItem). A rollout
 * command: see shared/rollouts/rollout-service.ts. Reads of one document are 1 GetItem.
 */
import { ConflictError, ValidationError } from '../errors.ts';
import type { EventStore } from '../ports.ts';
import type { OperatorVerb } from '../rollouts/rollout-decider.ts';
import { operatorCommand } from '../rollouts/rollout-decider.ts';
import {
  createRollout,
  loadRollout,
  mirrorToGroup,
  readRollout,
  runRolloutCommand,
} from '../rollouts/rollout-service.ts';
import { type DefinitionFormat, parseGroupDefinition } from './compile.ts';
import type { RolloutRequested } from './events.ts';
import { coversWholeGroup, type DefinitionPreconditions, groupNotFound } from './group-decider.ts';
import { documentOf, type GroupDocument, isFinalRolloutStatus } from './group-state.ts';
import { checkGroupName, runGroupCommand } from './group-stream.ts';
import type { Rollout, RolloutOperation, RolloutRequest } from './model.ts';
import type { DocumentStore, ReconcileStarter, StoredDocument } from './ports.ts';

export type { Alarm } from './group-decider.ts';
export {
  checkGroupName,
  clearAlarm,
  endScaleEpisode,
  raiseAlarm,
  recordScalingDecision,
  scaleGroup,
} from './group-stream.ts';
export type { DefinitionFormat, DefinitionPreconditions };

export interface GroupServiceDeps {
  events: EventStore;
  documents: DocumentStore;
  reconcile: ReconcileStarter;
  now: () => Date;
  /** Random lowercase letters and digits; makes rollout ids unique within one millisecond. */
  newId: () => string;
}

export interface DefineOutcome {
  outcome: 'created' | 'updated' | 'unchanged';
  group: GroupDocument;
  /** Set when the group runs and the new definition started a reconcile. */
  executionId?: string;
  /**
   * The rollout the definition's change of a running group's hosts started (a service's version or config, a
   * host type's launch fields); further changes it declared wait for it in the group's queue.
   */
  rollout?: Rollout;
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

export class GroupService {
  constructor(private readonly deps: GroupServiceDeps) {}

  /* ───────────── groups ───────────── */

  async defineGroup(
    name: string,
    text: string,
    format: DefinitionFormat,
    preconditions: DefinitionPreconditions = {},
  ): Promise<DefineOutcome> {
    const definition = parseGroupDefinition(text, format);
    if (definition.name !== name) {
      throw new ValidationError(
        `the path names group "${name}" but the definition is named "${definition.name}": they must be equal`,
        { parameter: 'name', path: name, definitionName: definition.name },
      );
    }
    const command = {
      type: 'Define',
      definition,
      source: format,
      preconditions,
      at: this.deps.now(),
    } as const;
    const { state, outcome } = await this.pastEndedRollout(name, () =>
      runGroupCommand(this.deps, name, command, 'defined'),
    );
    const group = documentOf(state) as GroupDocument;
    if (!state.running) return { outcome: outcome.outcome, group };
    const rollout = outcome.requested ? await createRollout(this.deps, name, outcome.requested) : undefined;
    // Unchanged asks again for the same run: a definition recorded before a failed start is repaired.
    const { executionId } = await this.deps.reconcile.start({
      group: name,
      reason: 'definition-changed',
      ...(rollout ? { rolloutId: rollout.id } : {}),
      dedupeKey: `group-${name}-def-${state.definitionVersion}`,
    });
    return { outcome: outcome.outcome, group, executionId, ...(rollout ? { rollout } : {}) };
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

  async deleteGroup(name: string, preconditions: DefinitionPreconditions = {}): Promise<void> {
    await runGroupCommand(this.deps, name, { type: 'Delete', preconditions, at: this.deps.now() }, 'deleted');
  }

  private async run(name: string, running: boolean): Promise<RunOutcome> {
    const at = this.deps.now();
    const { state, outcome } = await runGroupCommand(
      this.deps,
      name,
      running ? { type: 'Start', at } : { type: 'Stop', at },
      'run',
    );
    // Asking again names the same run: a start that reached the stream but not the state machine is repaired.
    const { executionId } = await this.deps.reconcile.start({
      group: name,
      reason: running ? 'group-started' : 'group-stopped',
      dedupeKey: `group-${name}-${running ? 'start' : 'stop'}-${state.runVersion}`,
    });
    return { group: name, running, executionId, changed: outcome.changed };
  }

  /* ───────────── rollouts ───────────── */

  /**
   * Recorded in the group's stream first (which refuses a second rollout while one holds the group), then
   * the rollout's own stream is created from that record: a lost race leaves no orphan rollout behind.
   */
  async requestRollout(name: string, request: RolloutRequest): Promise<RolloutOutcome> {
    const at = this.deps.now();
    const rolloutId = newRolloutId(at, this.deps.newId());
    const requested = await this.recordRequest(name, rolloutId, request, at);
    const rollout = await createRollout(this.deps, name, requested);
    const { executionId } = await this.deps.reconcile.start({
      group: name,
      reason: 'rollout',
      rolloutId,
      dedupeKey: `rollout-${rolloutId}`,
    });
    return { rollout, executionId };
  }

  private async recordRequest(
    name: string,
    rolloutId: string,
    request: RolloutRequest,
    at: Date,
  ): Promise<RolloutRequested['data']> {
    const command = { type: 'RequestRollout', rolloutId, request, at } as const;
    const { outcome } = await this.pastEndedRollout(name, () =>
      runGroupCommand(this.deps, name, command, 'rollout-requested'),
    );
    return outcome.requested;
  }

  /**
   * Runs a group command the group refuses while its stream names a rollout unfinished. Should that rollout's
   * own stream say it has ended (a crash kept the news from the group), the group is told and asked once more;
   * a rollout whose stream was never created is created on the way (loadRollout).
   */
  private async pastEndedRollout<T>(name: string, command: () => Promise<T>): Promise<T> {
    try {
      return await command();
    } catch (error) {
      const blocking = blockingRolloutOf(error);
      if (blocking === undefined) throw error;
      const current = await loadRollout(this.deps, blocking, name);
      if (!isFinalRolloutStatus(current.rollout.status)) throw error;
      await mirrorToGroup(this.deps, current);
      return command();
    }
  }

  getRollout(id: string): Promise<Rollout> {
    return readRollout(this.deps, id);
  }

  /**
   * Stops, starts or removes a service on the selected hosts (default all): a rollout like any other, through
   * the same planner, waves, budget and drain. Removing takes it out of the definition once it succeeded.
   */
  serviceOperation(
    name: string,
    service: string,
    operation: Exclude<RolloutOperation, 'update'>,
    select?: string,
  ): Promise<RolloutOutcome> {
    return this.requestRollout(name, { service, operation, ...(select !== undefined ? { select } : {}) });
  }

  /**
   * Puts back what a succeeded rollout changed, as a new rollout named a revert of it (revertOf): the
   * version and config its hosts had before (as it recorded them), on the hosts it reached, through the same
   * waves, budget and drain. One still active is refused: abort it instead.
   */
  async revertRollout(id: string): Promise<RolloutOutcome> {
    const rollout = await readRollout(this.deps, id);
    return this.requestRollout(rollout.group, revertRequest(rollout));
  }

  /**
   * Pause, resume or abort. Resuming and aborting hand the rollout to the reconcile: a run is always asked for,
   * named after this command and the rollout's version, and a run that already holds the group takes it in.
   */
  async commandRollout(id: string, verb: OperatorVerb): Promise<RolloutOutcome> {
    const { rollout, streamVersion } = await runRolloutCommand(
      this.deps,
      id,
      operatorCommand(verb, this.deps.now()),
    );
    if (verb === 'pause') return { rollout };
    const { executionId } = await this.deps.reconcile.start({
      group: rollout.group,
      reason: 'rollout',
      rolloutId: id,
      dedupeKey: `rollout-${id}-${verb}-${streamVersion}`,
    });
    return { rollout, executionId };
  }
}

/** The rollout that undoes `rollout`, or the refusal saying why it cannot be undone so. */
export function revertRequest(rollout: Rollout): RolloutRequest {
  const details = { rolloutId: rollout.id, group: rollout.group, rolloutStatus: rollout.status };
  if (!isFinalRolloutStatus(rollout.status)) {
    throw new ConflictError(
      `rollout ${rollout.id} is ${rollout.status}: only a finished rollout is reverted; abort an active one`,
      { ...details, reason: 'rollout-active' },
    );
  }
  if (rollout.status !== 'succeeded') {
    throw new ConflictError(
      `rollout ${rollout.id} ended ${rollout.status}: its hosts were put back already, there is nothing to revert`,
      { ...details, reason: 'rollout-not-succeeded' },
    );
  }
  const operation = rollout.operation ?? 'update';
  if (operation === 'remove' || rollout.replaceHostType !== undefined) {
    throw new ConflictError(
      `rollout ${rollout.id} ${operation === 'remove' ? 'removed a service' : `replaced the hosts of ${rollout.replaceHostType}`}: put the previous definition back (PUT /groups/${rollout.group}) instead`,
      { ...details, reason: 'not-revertible' },
    );
  }
  const select = coversWholeGroup(rollout)
    ? 'all'
    : rollout.hosts.done.length > 0
      ? `ids(${[...rollout.hosts.done].sort().join(',')})`
      : (rollout.select ?? 'all');
  const common = { service: rollout.service, select, revertOf: rollout.id };
  if (operation === 'stop') return { ...common, operation: 'start' };
  if (operation === 'start') return { ...common, operation: 'stop' };
  const version = rollout.from?.version ?? rollout.previousVersion;
  // Only the keys the rollout set go back, to what they were (a key it added has no value to go back to).
  const config = Object.fromEntries(
    Object.keys(rollout.config ?? {}).flatMap((key) => {
      const value = rollout.from?.config?.[key];
      return value === undefined ? [] : [[key, value] as const];
    }),
  );
  if (version === undefined && Object.keys(config).length === 0) {
    throw new ConflictError(`rollout ${rollout.id} recorded nothing to go back to`, {
      ...details,
      reason: 'not-revertible',
    });
  }
  return {
    ...common,
    ...(version !== undefined ? { version } : {}),
    ...(Object.keys(config).length > 0 ? { config } : {}),
  };
}

function blockingRolloutOf(error: unknown): string | undefined {
  if (!(error instanceof ConflictError) || error.details.reason !== 'rollout-active') return undefined;
  const id = error.details.rolloutId;
  return typeof id === 'string' ? id : undefined;
}

/** `r-` + milliseconds in base 36 (fixed width, so ids sort by time) + a random suffix. */
export function newRolloutId(now: Date, suffix: string): string {
  return `r-${now.getTime().toString(36).padStart(9, '0')}-${suffix}`;
}
