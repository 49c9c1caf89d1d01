/**
 * A rollout's own stream (`rollout#<id>`). Operators pause, resume and abort it; the reconcile plans it, moves
 * it wave by wave, and ends it (succeeded, reverted, failed). Pure: time comes in with each command. Every
 * event id is derived from the rollout id and the stream version it lands at, so a retried command that
 * lost nothing is recognisable, and none is random.
 *
 *   pending ──Plan──▶ running ──Succeed──▶ succeeded
 *      │ ╲              │  ▲
 *      │  Pause       Pause Resume            Abort (operator) / Revert (a wave failed)
 *      │     ╲          ▼  │                  from pending, running, paused ──▶ reverting
 *      │      ╰──────▶ paused                 reverting ──FinishRevert──▶ aborted | rolled-back
 *      ╰──────── Fail, from anything not final ──▶ failed
 */
import type { Decider, Decision } from '../command/decider.ts';
import { ConflictError, NotFoundError, ValidationError } from '../errors.ts';
import type { NewEvent, RecordedEvent } from '../events.ts';
import type { RolloutRequested } from '../groups/events.ts';
import { isFinalRolloutStatus } from '../groups/group-state.ts';
import type { Rollout, RolloutStatus } from '../groups/model.ts';
import { plannedTargets, type RolloutEvent } from './rollout-events.ts';

export type OperatorVerb = 'pause' | 'resume' | 'abort';

export type RolloutCommand =
  | { type: 'Request'; group: string; request: RolloutRequested['data'] }
  | { type: 'Pause' | 'Resume' | 'Abort'; at: Date }
  | { type: 'Plan'; waves: { index: number; hosts: string[] }[]; targets: string[]; run: string; at: Date }
  | { type: 'StartWave'; index: number; at: Date }
  | { type: 'SettleWave'; index: number; done: string[]; failed: string[]; at: Date }
  | { type: 'Succeed'; at: Date }
  | { type: 'Revert'; reason: string; at: Date }
  | { type: 'FinishRevert'; at: Date }
  | { type: 'Fail'; reason: string; at: Date };

export interface RolloutState {
  /** The last stream version folded in (0: the stream is empty). */
  version: number;
  rollout?: Rollout;
}

export interface RolloutOutcome {
  /** Whether the events change the rollout's status: what the group's stream mirrors. */
  statusChanged: boolean;
}

/** The rollout's id, which an empty stream's state cannot say. */
export interface RolloutContext {
  rolloutId: string;
}

export const NO_ROLLOUT: RolloutState = { version: 0 };

export function operatorCommand(verb: OperatorVerb, at: Date): RolloutCommand {
  const type = verb === 'pause' ? 'Pause' : verb === 'resume' ? 'Resume' : 'Abort';
  return { type, at };
}

export function newRollout(group: string, data: RolloutRequested['data']): Rollout {
  return {
    id: data.rolloutId,
    group,
    service: data.service,
    ...(data.version !== undefined ? { version: data.version } : {}),
    ...(data.config !== undefined ? { config: data.config } : {}),
    select: data.select ?? 'all',
    ...(data.operation !== undefined ? { operation: data.operation } : {}),
    ...(data.replaceHostType !== undefined ? { replaceHostType: data.replaceHostType } : {}),
    ...(data.revertOf !== undefined ? { revertOf: data.revertOf } : {}),
    ...(data.cause !== undefined ? { cause: data.cause } : {}),
    status: 'pending',
    ...(data.previousVersion !== undefined ? { previousVersion: data.previousVersion } : {}),
    ...(data.from !== undefined ? { from: data.from } : {}),
    createdAt: data.requestedAt,
    updatedAt: data.requestedAt,
    waves: [],
    hosts: { done: [], pending: [], failed: [] },
  };
}

function without(hosts: readonly string[], ...removed: readonly (readonly string[])[]): string[] {
  const gone = new Set(removed.flat());
  return hosts.filter((host) => !gone.has(host));
}

function union(hosts: readonly string[], added: readonly string[]): string[] {
  return [...new Set([...hosts, ...added])];
}

type Waves = Rollout['waves'];

/**
 * The waves the reconcile is working through: the rollout's own, or while reverting the revert's, so the
 * rollout's waves stay as they ended (which hosts got the change, which never did).
 */
function currentWaves(rollout: Rollout): Waves {
  return rollout.status === 'reverting' ? (rollout.revert?.waves ?? []) : rollout.waves;
}

function withWaves(rollout: Rollout, waves: Waves): Partial<Rollout> {
  if (rollout.status !== 'reverting' || !rollout.revert) return { waves };
  return { revert: { ...rollout.revert, waves } };
}

function plannedWaves(waves: readonly { index: number; hosts: string[] }[]): Waves {
  return waves.map((wave) => ({ index: wave.index, hosts: [...wave.hosts], status: 'pending' }));
}

function plannedStatus(status: RolloutStatus): RolloutStatus {
  return status === 'pending' ? 'running' : status;
}

export function evolveRollout(state: RolloutState, event: RecordedEvent<RolloutEvent>): RolloutState {
  const version = event.version;
  if (event.type === 'RolloutCreated')
    return { version, rollout: newRollout(event.data.group, event.data.request) };
  const current = state.rollout;
  if (!current) return { version };
  const moved = (change: Partial<Rollout>): RolloutState => ({
    version,
    rollout: { ...current, ...change, updatedAt: event.data.at },
  });
  switch (event.type) {
    case 'RolloutPaused':
      return moved({ status: 'paused' });
    case 'RolloutResumed':
      return moved({ status: 'running' });
    case 'RolloutPlanned':
      return moved({
        status: plannedStatus(current.status),
        ...withWaves(current, plannedWaves(event.data.waves)),
        // Pending accumulates over passes: a host an earlier pass targeted stays the rollout's until it is done,
        // even when a later plan has nothing left to do to it (it was told, and has not reported yet).
        hosts: {
          ...current.hosts,
          pending: without(union(current.hosts.pending, plannedTargets(event.data)), current.hosts.done),
        },
      });
    case 'RolloutWaveStarted':
      return moved(
        withWaves(
          current,
          currentWaves(current).map((wave) =>
            wave.index === event.data.index ? { ...wave, status: 'running' } : wave,
          ),
        ),
      );
    case 'RolloutWaveSettled': {
      const { index, done, failed } = event.data;
      return moved({
        ...withWaves(
          current,
          currentWaves(current).map((wave) =>
            wave.index === index ? { ...wave, status: failed.length > 0 ? 'failed' : 'done' } : wave,
          ),
        ),
        hosts: {
          done: union(current.hosts.done, done),
          pending: without(current.hosts.pending, done, failed),
          failed: union(current.hosts.failed, failed),
        },
      });
    }
    case 'RolloutSucceeded':
      return moved({ status: 'succeeded' });
    case 'RolloutRevertStarted': {
      const { outcome, reason } = event.data;
      return moved({
        status: 'reverting',
        revert: { outcome, reason },
        ...(outcome === 'rolled-back' ? { error: reason } : {}),
      });
    }
    case 'RolloutRevertFinished':
      return moved({ status: event.data.outcome });
    case 'RolloutFailed':
      return moved({ status: 'failed', error: event.data.reason });
  }
}

type RolloutDecision = Decision<RolloutEvent, RolloutOutcome>;

const UNCHANGED: RolloutDecision = { events: [], outcome: { statusChanged: false } };

export const rolloutDecider: Decider<
  RolloutState,
  RolloutCommand,
  RolloutEvent,
  RolloutOutcome,
  RolloutContext
> = {
  initial: NO_ROLLOUT,
  versionOf: (state) => state.version,
  evolve: evolveRollout,
  decide(command, state, { rolloutId }): RolloutDecision {
    if (command.type === 'Request') {
      if (state.rollout) {
        throw new ConflictError(`rollout ${rolloutId} exists`, { rolloutId, reason: 'rollout-exists' });
      }
      return {
        events: [
          {
            type: 'RolloutCreated',
            eventId: `${rolloutId}.created`,
            data: { group: command.group, request: command.request },
          },
        ],
        outcome: { statusChanged: false },
      };
    }
    const rollout = state.rollout;
    if (!rollout) throw new NotFoundError(`rollout "${rolloutId}" not found`, { rolloutId });
    const { status } = rollout;
    const final = isFinalRolloutStatus(status);
    const eventId = (what: string) => `${rolloutId}.${state.version + 1}.${what}`;
    const at = command.at.toISOString();
    const emit = (event: NewEvent<RolloutEvent>, statusChanged: boolean): RolloutDecision => ({
      events: [event],
      outcome: { statusChanged },
    });
    switch (command.type) {
      case 'Pause':
      case 'Resume':
      case 'Abort':
        return operatorDecision(rollout, command.type, at, eventId);
      case 'Plan': {
        if (final) return UNCHANGED;
        const next = plannedStatus(status);
        const waves = plannedWaves(command.waves);
        const pending = without(union(rollout.hosts.pending, command.targets), rollout.hosts.done);
        const same =
          next === status &&
          JSON.stringify(waves) === JSON.stringify(currentWaves(rollout)) &&
          JSON.stringify(pending) === JSON.stringify(rollout.hosts.pending);
        if (same) return UNCHANGED;
        const inWaves = new Set(command.waves.flatMap((wave) => wave.hosts));
        const alsoTargets = command.targets.filter((host) => !inWaves.has(host));
        return emit(
          {
            type: 'RolloutPlanned',
            eventId: eventId('planned'),
            data: {
              run: command.run,
              waves: command.waves,
              ...(alsoTargets.length > 0 ? { alsoTargets } : {}),
              at,
            },
          },
          next !== status,
        );
      }
      case 'StartWave': {
        if (final) return UNCHANGED;
        if (waveOf(rollout, command.index).status !== 'pending') return UNCHANGED;
        return emit(
          {
            type: 'RolloutWaveStarted',
            eventId: eventId(`wave-${command.index}-started`),
            data: { index: command.index, at },
          },
          false,
        );
      }
      case 'SettleWave': {
        if (final) return UNCHANGED;
        const wave = waveOf(rollout, command.index);
        if (wave.status === 'done' || wave.status === 'failed') return UNCHANGED;
        return emit(
          {
            type: 'RolloutWaveSettled',
            eventId: eventId(`wave-${command.index}-settled`),
            data: { index: command.index, done: command.done, failed: command.failed, at },
          },
          false,
        );
      }
      case 'Succeed':
        if (status !== 'pending' && status !== 'running') return UNCHANGED;
        return emit({ type: 'RolloutSucceeded', eventId: eventId('succeeded'), data: { at } }, true);
      case 'Revert':
        if (status === 'reverting' || final) return UNCHANGED;
        return emit(
          {
            type: 'RolloutRevertStarted',
            eventId: eventId('reverting'),
            data: { outcome: 'rolled-back', reason: command.reason, at },
          },
          true,
        );
      case 'FinishRevert': {
        if (status !== 'reverting') return UNCHANGED;
        const outcome = rollout.revert?.outcome ?? 'rolled-back';
        return emit(
          { type: 'RolloutRevertFinished', eventId: eventId(outcome), data: { outcome, at } },
          true,
        );
      }
      case 'Fail':
        if (final) return UNCHANGED;
        return emit(
          { type: 'RolloutFailed', eventId: eventId('failed'), data: { reason: command.reason, at } },
          true,
        );
    }
  },
};

function waveOf(rollout: Rollout, index: number): Waves[number] {
  const waves = currentWaves(rollout);
  const wave = waves.find((candidate) => candidate.index === index);
  if (!wave) {
    throw new ValidationError(
      `rollout ${rollout.id} has no wave ${index}; its waves are ${waves.map((w) => w.index).join(', ') || 'none yet'}`,
      { rolloutId: rollout.id, wave: index },
    );
  }
  return wave;
}

/** The operator's commands: the status each moves the rollout to, or a ConflictError saying from where it is allowed. */
function operatorDecision(
  rollout: Rollout,
  type: 'Pause' | 'Resume' | 'Abort',
  at: string,
  eventId: (what: string) => string,
): RolloutDecision {
  const { id, status } = rollout;
  const command = type.toLowerCase() as OperatorVerb;
  const refuse = (allowed: string) =>
    new ConflictError(`rollout ${id} is ${status}: ${allowed}`, {
      rolloutId: id,
      rolloutStatus: status,
      command,
    });
  const emit = (event: NewEvent<RolloutEvent>): RolloutDecision => ({
    events: [event],
    outcome: { statusChanged: true },
  });
  switch (type) {
    case 'Pause':
      if (status !== 'pending' && status !== 'running')
        throw refuse('only a pending or running rollout can be paused');
      return emit({ type: 'RolloutPaused', eventId: eventId('paused'), data: { at } });
    case 'Resume':
      if (status !== 'paused') throw refuse('only a paused rollout can be resumed');
      return emit({ type: 'RolloutResumed', eventId: eventId('running'), data: { at } });
    case 'Abort':
      if (status === 'reverting') throw refuse('it is already reverting');
      if (isFinalRolloutStatus(status)) throw refuse('it has finished, so there is nothing left to abort');
      return emit({
        type: 'RolloutRevertStarted',
        eventId: eventId('reverting'),
        data: { outcome: 'aborted', reason: 'operator: abort', at },
      });
  }
}
