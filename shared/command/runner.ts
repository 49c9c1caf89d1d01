/**
 * The one way anything is written: read the stream from where its projection stands, decide, append with the
 * conditional put on the next version, and on a lost race read again and decide again (retryOnConflict: one
 * backoff, one limit), then write the projection behind its version guard. A crash between the append and the
 * projection repairs itself: the next command on the stream folds in what the projection missed.
 */
import { ConflictError } from '../errors.ts';
import type { FleetEvent, NewEvent, RecordedEvent } from '../events.ts';
import type { EventStore } from '../ports.ts';
import { DEFAULT_RETRY, type RetryPolicy, retryOnConflict } from '../retry.ts';
import type { Decider } from './decider.ts';

/** The event store's largest page: catching up reads few events, rebuilding a lost projection many. */
const CATCH_UP_PAGE = 1000;

/** A projection as stored, with whatever its store needs to guard the next write (e.g. a document version). */
export interface Stored<S> {
  state: S;
  revision: number;
}

/**
 * Where a stream's state is kept between commands. `save` must not overwrite a newer state (judged by the
 * decider's versionOf) and must not throw when it finds one: the stream, not the projection, is the record.
 */
export interface Projection<S> {
  load(): Promise<Stored<S> | undefined>;
  save(state: S, stored: Stored<S> | undefined): Promise<void>;
}

export interface CommandDeps {
  events: EventStore;
  now: () => Date;
  retry?: RetryPolicy;
}

export interface StreamTarget<S, C, E extends FleetEvent, R, X> {
  stream: string;
  decider: Decider<S, C, E, R, X>;
  /** Absent: the state is folded from the stream alone (streams that are short, or read rarely). */
  projection?: Projection<S>;
  /**
   * Decide the first try on the projection as stored, without reading the stream beyond it: for hot paths
   * (ingest) where the projection is almost always current. The conditional append still guards every write;
   * only a lost race pays the catch-up read.
   */
  trustProjection?: boolean;
  /**
   * The stream is new (its id was just made): decide the first try on the initial state without reading
   * anything. The conditional append at version 1 still refuses it if the stream exists after all.
   */
  expectEmpty?: boolean;
  /** What the decider needs beyond the state, computed from it (e.g. the host's decrypted secret). */
  context?: (state: S) => X | Promise<X>;
}

export interface CommandResult<S, E extends FleetEvent, R> {
  state: S;
  outcome: R;
  /** The events this command appended (empty when it changed nothing). */
  appended: RecordedEvent<E>[];
  attempts: number;
}

/**
 * The state of a stream: its projection caught up with every event beyond it. `folded` counts the events read
 * beyond the projection. A multi-event append lands one put at a time, so the fold stops at a hole in the
 * versions: the state is then a consistent prefix of the stream, never one with an event missing inside.
 */
export async function loadStream<S, C, E extends FleetEvent, R, X>(
  events: EventStore,
  target: StreamTarget<S, C, E, R, X>,
  catchUp = true,
): Promise<{ state: S; stored: Stored<S> | undefined; folded: number }> {
  const stored = await target.projection?.load();
  let state = stored?.state ?? target.decider.initial;
  if (!catchUp && stored) return { state, stored, folded: 0 };
  let cursor: string | undefined;
  const fromVersion = target.decider.versionOf(state) + 1;
  let folded = 0;
  do {
    // fromVersion stays where the read began: a cursor belongs to the range it was issued for.
    const page = await events.read<E>(target.stream, { fromVersion, limit: CATCH_UP_PAGE, cursor });
    for (const event of page.events) {
      if (event.version !== fromVersion + folded) return { state, stored, folded };
      state = target.decider.evolve(state, event);
      folded += 1;
    }
    cursor = page.next;
  } while (cursor !== undefined);
  return { state, stored, folded };
}

/** A decider's refusal travels past the retry loop untouched: a 409 of the domain is no lost race. */
class Refused {
  constructor(readonly error: unknown) {}
}

/** One try: decide on the current state and append; a ConflictError means somebody appended first. */
async function decideOnce<S, C, E extends FleetEvent, R, X>(
  deps: CommandDeps,
  target: StreamTarget<S, C, E, R, X>,
  command: C,
  catchUp: boolean,
  firstTry: boolean,
): Promise<Omit<CommandResult<S, E, R>, 'attempts'> | Refused> {
  const { state, stored, folded } =
    firstTry && target.expectEmpty
      ? { state: target.decider.initial, stored: undefined, folded: 0 }
      : await loadStream(deps.events, target, catchUp);
  const ctx = (await target.context?.(state)) as X;
  let decision: ReturnType<typeof target.decider.decide>;
  try {
    decision = target.decider.decide(command, state, ctx);
  } catch (error) {
    return new Refused(error);
  }
  const { events, outcome } = decision;
  if (events.length > 0 && folded > 0) await notInsideAnAppend(deps, target, state);
  const appended = events.length > 0 ? await append(deps, target, state, events) : [];
  const next = appended.reduce((folded, event) => target.decider.evolve(folded, event), state);
  // Also when nothing was appended but the projection was behind the stream: it catches up for free.
  const behind =
    stored === undefined || target.decider.versionOf(stored.state) < target.decider.versionOf(next);
  if (target.projection && behind && target.decider.versionOf(next) > 0)
    await target.projection.save(next, stored);
  return { state: next, outcome, appended };
}

/** Decides and appends, deciding again on the newer state whenever another writer appended first. */
export async function runCommand<S, C, E extends FleetEvent, R, X>(
  deps: CommandDeps,
  target: StreamTarget<S, C, E, R, X>,
  command: C,
  /**
   * A projection-only write the decision calls for (a heartbeat's guarded lastSeen), inside the same try: a
   * ConflictError from it decides again, like a lost append.
   */
  settle?: (result: Omit<CommandResult<S, E, R>, 'attempts'>) => Promise<void>,
): Promise<CommandResult<S, E, R>> {
  let attempts = 0;
  const result = await retryOnConflict(async (tryNumber) => {
    attempts = tryNumber;
    const catchUp = tryNumber > 1 || !target.trustProjection;
    const tried = await decideOnce(deps, target, command, catchUp, tryNumber === 1);
    if (!(tried instanceof Refused)) await settle?.(tried);
    return tried;
  }, deps.retry ?? DEFAULT_RETRY);
  if (result instanceof Refused) throw result.error;
  return { ...result, attempts };
}

/**
 * A state read from the stream may end inside another writer's multi-event append whose later events are still
 * landing: appending after it would take versions that append has claimed (and fail it half-written). The
 * store's currentVersion counts claimed versions; being behind it is a lost race like any other. A state that is
 * the projection as stored needs no such look: projections are saved only after their appends are complete.
 */
async function notInsideAnAppend<S, C, E extends FleetEvent, R, X>(
  deps: CommandDeps,
  target: StreamTarget<S, C, E, R, X>,
  state: S,
): Promise<void> {
  const version = target.decider.versionOf(state);
  const current = await deps.events.currentVersion(target.stream);
  if (current > version) {
    throw new ConflictError(`stream ${target.stream} is at version ${current}, beyond ${version} as read`, {
      stream: target.stream,
      version: current,
    });
  }
}

async function append<S, C, E extends FleetEvent, R, X>(
  deps: CommandDeps,
  target: StreamTarget<S, C, E, R, X>,
  state: S,
  events: readonly NewEvent<E>[],
): Promise<RecordedEvent<E>[]> {
  const version = target.decider.versionOf(state);
  const at = deps.now();
  await deps.events.append<E>(target.stream, version, events, at);
  return events.map(
    (event, index) =>
      ({
        ...event,
        stream: target.stream,
        version: version + 1 + index,
        recordedAt: at.toISOString(),
      }) as RecordedEvent<E>,
  );
}
