/**
 * Rollouts on the command layer: each command runs on the rollout's own stream (`rollout#<id>`, projected
 * into the 'rollout' document), then its change of status is mirrored into the group's stream, where a
 * succeeded rollout also becomes the definition. The API (operators) and the reconcile both command rollouts
 * through here; neither writes the document. Ports only: no AWS SDK here.
 *
 * The group's stream records a rollout first (RolloutRequested), its own stream is created after; a crash
 * between the two leaves a rollout the group names but whose stream is empty, which is created from the
 * group's record when it is next read or commanded.
 *
 * Requests per command (DynamoDB): the rollout document (1 GetItem), the events beyond it (1 Query), the
 * append and the document (2 PutItem); a change of status adds the group's command (GetItem, Query, PutItem,
 * PutItem). A read is 1 GetItem.
 */
import { documentProjection } from '../command/document-projection.ts';
import type { CommandResult, Projection, StreamTarget } from '../command/runner.ts';
import { loadStream, runCommand } from '../command/runner.ts';
import { ConflictError, NotFoundError } from '../errors.ts';
import type { RolloutRequested } from '../groups/events.ts';
import type { AdoptOutcome } from '../groups/group-decider.ts';
import { type GroupDocument, isFinalRolloutStatus } from '../groups/group-state.ts';
import {
  adoptRollout,
  type GroupStreamDeps,
  loadGroupState,
  recordRolloutStatus,
} from '../groups/group-stream.ts';
import type { Rollout } from '../groups/model.ts';
import type { DocumentStore } from '../groups/ports.ts';
import {
  type RolloutCommand,
  type RolloutContext,
  type RolloutOutcome,
  type RolloutState,
  rolloutDecider,
} from './rollout-decider.ts';
import { type RolloutEvent, rolloutStream } from './rollout-events.ts';

export type RolloutDeps = GroupStreamDeps;

/** The 'rollout' document: the rollout, and the stream version it reflects (for the projection's catch-up). */
export type RolloutDocument = Rollout & { streamVersion: number };

type RolloutTarget = StreamTarget<RolloutState, RolloutCommand, RolloutEvent, RolloutOutcome, RolloutContext>;

function rolloutOf(document: RolloutDocument): Rollout {
  const { streamVersion: _, ...rollout } = document;
  return rollout;
}

function rolloutProjection(deps: RolloutDeps, rolloutId: string): Projection<RolloutState> {
  return documentProjection<RolloutState, RolloutDocument>({
    documents: deps.documents,
    kind: 'rollout',
    id: rolloutId,
    now: deps.now,
    versionOf: rolloutDecider.versionOf,
    toBody: (state) => (state.rollout ? { ...state.rollout, streamVersion: state.version } : undefined),
    fromBody: (body) => ({ version: body.streamVersion ?? 0, rollout: rolloutOf(body) }),
  });
}

/**
 * A rollout id made a moment ago has no document: the first try skips reading it, and a rollout that does
 * exist after all is found in its stream, which the runner reads anyway.
 */
function rolloutTarget(deps: RolloutDeps, rolloutId: string, isNew = false): RolloutTarget {
  const projection = rolloutProjection(deps, rolloutId);
  return {
    stream: rolloutStream(rolloutId),
    decider: rolloutDecider,
    projection,
    expectEmpty: isNew,
    context: () => ({ rolloutId }),
  };
}

export interface RolloutCommandResult {
  rollout: Rollout;
  /** The rollout stream's version after the command: names what the command led to (e.g. a reconcile run). */
  streamVersion: number;
  /** False when the command changed nothing (it was done already, or does nothing in this status). */
  changed: boolean;
  /** Set when the command ended the rollout succeeded: what its group made of it. */
  adoption?: Omit<AdoptOutcome, 'kind'>;
}

/** One GetItem: the rollout as last projected, undefined when there is none. */
export async function getRollout(documents: DocumentStore, id: string): Promise<Rollout | undefined> {
  const document = await documents.get<RolloutDocument>('rollout', id);
  return document && rolloutOf(document.body);
}

/**
 * The rollout as last projected (1 GetItem). Without a document it is read from its stream, and a rollout
 * whose group names it but whose stream is empty is created from the group's record first; `group`, when
 * known, saves looking for the group that names it.
 */
export async function readRollout(deps: RolloutDeps, id: string, group?: string): Promise<Rollout> {
  return (await getRollout(deps.documents, id)) ?? (await loadRollout(deps, id, group)).rollout;
}

/** Creates the rollout's stream from the request its group recorded; one already created is returned as it is. */
export async function createRollout(
  deps: RolloutDeps,
  group: string,
  request: RolloutRequested['data'],
): Promise<Rollout> {
  const id = request.rolloutId;
  try {
    const { state } = await runCommand(deps, rolloutTarget(deps, id, true), {
      type: 'Request',
      group,
      request,
    });
    return existing(id, state).rollout;
  } catch (error) {
    if (!(error instanceof ConflictError && error.details.reason === 'rollout-exists')) throw error;
    return (await loadRollout(deps, id, group)).rollout;
  }
}

/** Runs a command on the rollout and mirrors what it did into the group; the rollout as it is afterwards. */
export async function commandRollout(
  deps: RolloutDeps,
  rolloutId: string,
  command: RolloutCommand,
): Promise<Rollout> {
  return (await runRolloutCommand(deps, rolloutId, command)).rollout;
}

export async function runRolloutCommand(
  deps: RolloutDeps,
  rolloutId: string,
  command: RolloutCommand,
): Promise<RolloutCommandResult> {
  const result = await commandStream(deps, rolloutId, command);
  const current = existing(rolloutId, result.state);
  const changed = result.appended.length > 0;
  // A command that found its work done may be the retry of one that crashed before the group heard of the
  // end: an ended rollout is mirrored again (the group records it once), so the group is not held forever.
  const mirror =
    command.type !== 'Request' &&
    (result.outcome.statusChanged || (!changed && isFinalRolloutStatus(current.rollout.status)));
  const adoption = mirror
    ? await mirrorToGroup(deps, current, changed ? reasonOf(command, current.rollout) : undefined)
    : undefined;
  return {
    rollout: current.rollout,
    streamVersion: current.version,
    changed,
    ...(adoption ? { adoption } : {}),
  };
}

/** The rollout's stream, created first from its group's record when that is all there is of it. */
async function commandStream(
  deps: RolloutDeps,
  rolloutId: string,
  command: RolloutCommand,
): Promise<CommandResult<RolloutState, RolloutEvent, RolloutOutcome>> {
  try {
    return await runCommand(deps, rolloutTarget(deps, rolloutId), command);
  } catch (error) {
    if (!(error instanceof NotFoundError) || command.type === 'Request') throw error;
    if (!(await recreate(deps, rolloutId))) throw error;
    return runCommand(deps, rolloutTarget(deps, rolloutId), command);
  }
}

/**
 * Tells the group where its rollout stands: a success is adopted (recorded, and made the definition when it
 * covered the group), any other status recorded. The group decides on its own stream, so telling it twice
 * records once.
 */
export async function mirrorToGroup(
  deps: RolloutDeps,
  state: { version: number; rollout: Rollout },
  reason?: string,
): Promise<Omit<AdoptOutcome, 'kind'> | undefined> {
  const { rollout, version } = state;
  const at = new Date(rollout.updatedAt);
  if (rollout.status === 'succeeded') {
    const adoption = await adoptRollout(deps, rollout.group, {
      rolloutId: rollout.id,
      rolloutVersion: version,
      at,
    });
    if (adoption.next) await createRollout(deps, rollout.group, adoption.next);
    return adoption;
  }
  const { next } = await recordRolloutStatus(deps, rollout.group, {
    rolloutId: rollout.id,
    status: rollout.status,
    rolloutVersion: version,
    at,
    ...(reason !== undefined ? { reason } : {}),
  });
  // The group asked for the next declared change in the same append: its own stream is created from that
  // record now (or, after a crash here, when it is next read).
  if (next) await createRollout(deps, rollout.group, next);
  return undefined;
}

function reasonOf(command: RolloutCommand, rollout: Rollout): string | undefined {
  switch (command.type) {
    case 'Pause':
    case 'Resume':
    case 'Abort':
      return `operator: ${command.type.toLowerCase()}`;
    case 'Plan':
      return `reconcile: planned in ${command.run}`;
    case 'Revert':
    case 'Fail':
      return command.reason;
    case 'FinishRevert':
      return rollout.revert?.reason;
    default:
      return undefined;
  }
}

/** The rollout's stream state, with the rollout in it (created from the group's record if need be). */
export async function loadRollout(
  deps: RolloutDeps,
  id: string,
  group?: string,
): Promise<{ version: number; rollout: Rollout }> {
  const { state } = await loadStream(deps.events, rolloutTarget(deps, id));
  if (state.rollout) return { version: state.version, rollout: state.rollout };
  if (await recreate(deps, id, group)) {
    const again = await loadStream(deps.events, rolloutTarget(deps, id));
    return existing(id, again.state);
  }
  throw rolloutNotFound(id);
}

/** Creates a rollout its group names but whose stream is empty; false when no group names it. */
async function recreate(deps: RolloutDeps, id: string, group?: string): Promise<boolean> {
  const named =
    group === undefined ? await groupNaming(deps.documents, id) : await requestIn(deps, group, id);
  if (!named) return false;
  await createRollout(deps, named.group, named.request);
  return true;
}

async function requestIn(deps: RolloutDeps, group: string, id: string) {
  const active = (await loadGroupState(deps, group)).activeRollout;
  return active?.id === id ? { group, request: active.request } : undefined;
}

/**
 * The group whose document names the rollout active. Only a rollout id that has neither document nor stream
 * gets here (a crash between the group's append and the rollout's, or an id that never was), and groups are
 * few, so reading their documents page by page is the price of not keeping an index for a rare repair.
 */
async function groupNaming(documents: DocumentStore, id: string) {
  let cursor: string | undefined;
  do {
    const page = await documents.list<GroupDocument>('group', 100, cursor);
    for (const document of page.documents) {
      const active = document.body.activeRollout;
      if (active?.id === id) return { group: document.id, request: active.request };
    }
    cursor = page.next;
  } while (cursor !== undefined);
  return undefined;
}

function existing(id: string, state: RolloutState): { version: number; rollout: Rollout } {
  if (!state.rollout) throw rolloutNotFound(id);
  return { version: state.version, rollout: state.rollout };
}

function rolloutNotFound(id: string): NotFoundError {
  return new NotFoundError(`rollout "${id}" not found`, { rolloutId: id });
}
