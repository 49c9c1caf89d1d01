/**
 * The command layer's vocabulary: per stream type a decider — `decide(command, state, ctx)` answers with the
 * events the command causes (or throws a FleetfoldError saying why it is refused), `evolve(state, event)` folds
 * one event into the state, `initial` is the state of an empty stream. Pure: time, ids and anything read from
 * elsewhere come in through the command or `ctx`.
 */
import type { FleetEvent, NewEvent, RecordedEvent } from '../events.ts';

export interface Decision<E extends FleetEvent, R> {
  events: readonly NewEvent<E>[];
  /** What the caller learns beyond the events (e.g. a verdict, the id it made). */
  outcome: R;
}

export interface Decider<S, C, E extends FleetEvent, R = undefined, X = undefined> {
  readonly initial: S;
  /** The stream version `state` reflects (0 for `initial`). */
  versionOf(state: S): number;
  evolve(state: S, event: RecordedEvent<E>): S;
  decide(command: C, state: S, ctx: X): Decision<E, R>;
}

/** A decision with no outcome of its own. */
export function emit<E extends FleetEvent>(...events: NewEvent<E>[]): Decision<E, undefined> {
  return { events, outcome: undefined };
}

export function foldEvents<S, E extends FleetEvent>(
  decider: Pick<Decider<S, never, E, unknown, unknown>, 'evolve'>,
  state: S,
  events: Iterable<RecordedEvent<E>>,
): S {
  let next = state;
  for (const event of events) next = decider.evolve(next, event);
  return next;
}
