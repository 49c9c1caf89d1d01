/*
 * Given / when / then over a decider: the history given as new events (recorded on one stream at versions
 * 1, 2, …), folded with the decider's own `evolve`; the command decided on that state; then the events it
 * decides, or none, or its refusal.
 */
import { expect } from 'vitest';
import { type Decider, type Decision, foldEvents } from '../../shared/command/decider.ts';
import type { FleetEvent, NewEvent, RecordedEvent } from '../../shared/events.ts';

/** What a specification says of an event: its type, id, and any part of its data. */
export interface ExpectedEvent<E extends FleetEvent> {
  type?: E['type'];
  eventId?: string;
  data?: Record<string, unknown>;
}

export interface DeciderSpecOptions<X> {
  /** The stream the history is recorded on. */
  stream: string;
  /** When every event of the history was recorded. */
  recordedAt: string;
  /** The context a command is decided in unless the `when` names another. */
  context: X;
}

export interface Then<S, E extends FleetEvent, R> {
  /** Decides the command again (each call a fresh decision). */
  decide(): Decision<E, R>;
  /**
   * As many events as expected, each matching its expectation (the parts named); the decision, and the
   * state after the history and these events.
   */
  thenEvents(expected: readonly ExpectedEvent<E>[]): Decision<E, R> & { state: S };
  /** Exactly these events (compared whole); the outcome. */
  thenEmits(expected: readonly unknown[]): R;
  /** No events, and an outcome matching `outcome` where given. */
  thenNothing(outcome?: Partial<R>): Decision<E, R>;
  /** A refusal with this error (and this message, where given); the error thrown. */
  thenRejects<T extends Error>(error: new (...args: never[]) => T, message?: RegExp | string): T;
}

export function deciderSpec<S, C, E extends FleetEvent, R, X>(
  decider: Decider<S, C, E, R, X>,
  options: DeciderSpecOptions<X>,
) {
  function record(events: readonly NewEvent<E>[]): RecordedEvent<E>[] {
    return events.map(
      (event, index) =>
        ({
          ...event,
          stream: options.stream,
          version: index + 1,
          recordedAt: options.recordedAt,
        }) as RecordedEvent<E>,
    );
  }

  function stateOf(history: readonly NewEvent<E>[]): S {
    return foldEvents(decider, decider.initial, record(history));
  }

  function given(...history: NewEvent<E>[]) {
    const state = stateOf(history);
    return {
      state,
      when(command: C, ctx: X = options.context): Then<S, E, R> {
        const decide = () => decider.decide(command, state, ctx);
        return {
          decide,
          thenEvents(expected) {
            const decision = decide();
            expect(decision.events).toHaveLength(expected.length);
            for (const [index, event] of expected.entries())
              expect(decision.events[index]).toMatchObject(event);
            return { ...decision, state: stateOf([...history, ...decision.events]) };
          },
          thenEmits(expected) {
            const decision = decide();
            expect(decision.events).toEqual(expected);
            return decision.outcome;
          },
          thenNothing(outcome) {
            const decision = decide();
            expect(decision.events).toEqual([]);
            if (outcome) expect(decision.outcome).toMatchObject(outcome);
            return decision;
          },
          thenRejects(error, message) {
            expect(decide).toThrow(error);
            if (message !== undefined) expect(decide).toThrow(message);
            try {
              decide();
            } catch (thrown) {
              return thrown as InstanceType<typeof error>;
            }
            throw new Error('unreachable');
          },
        };
      },
    };
  }

  /** The history after these commands, each decided on the state the history before it folds into. */
  function played(history: readonly NewEvent<E>[], ...commands: C[]): NewEvent<E>[] {
    const next = [...history];
    for (const command of commands)
      next.push(...decider.decide(command, stateOf(next), options.context).events);
    return next;
  }

  return { record, stateOf, given, played };
}
