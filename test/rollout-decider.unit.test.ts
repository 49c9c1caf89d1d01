import { describe, expect, it } from 'vitest';
import { ConflictError, NotFoundError, ValidationError } from '../shared/errors.ts';
import type { NewEvent } from '../shared/events.ts';
import type { RolloutRequested } from '../shared/groups/events.ts';
import type { Rollout, RolloutStatus } from '../shared/groups/model.ts';
import { type RolloutCommand, rolloutDecider } from '../shared/rollouts/rollout-decider.ts';
import type { RolloutEvent } from '../shared/rollouts/rollout-events.ts';
import { deciderSpec, type ExpectedEvent } from './support/decider-spec.ts';

const AT = new Date('2031-02-03T04:05:06.000Z');
const LATER = new Date('2031-02-03T04:06:00.000Z');
const ID = 'r-1';

const request: RolloutRequested['data'] = {
  service: 'media',
  version: '2.2.0',
  select: 'all',
  rolloutId: ID,
  requestedAt: AT.toISOString(),
  previousVersion: '2.1.0',
};

/* ───────────── given / when / then over the decider ───────────── */

const spec = deciderSpec(rolloutDecider, {
  stream: `rollout#${ID}`,
  recordedAt: AT.toISOString(),
  context: { rolloutId: ID },
});
const { stateOf } = spec;

function given(...history: NewEvent<RolloutEvent>[]) {
  const { when } = spec.given(...history);
  return {
    when(command: RolloutCommand) {
      const then = when(command);
      return {
        ...then,
        /** The events decided, and the rollout they fold into. */
        thenEvents(expected: readonly ExpectedEvent<RolloutEvent>[]): Rollout {
          const { rollout } = then.thenEvents(expected).state;
          if (!rollout) throw new Error('no rollout');
          return rollout;
        },
      };
    },
  };
}

/** The history after the reconcile and operators gave these commands (each must be accepted or a no-op). */
function played(...commands: RolloutCommand[]): NewEvent<RolloutEvent>[] {
  return spec.played([], ...commands);
}

const create: RolloutCommand = { type: 'Request', group: 'demo', request };
const plan: RolloutCommand = {
  type: 'Plan',
  waves: [
    { index: 0, hosts: ['m-1'] },
    { index: 1, hosts: ['m-2', 'm-3'] },
  ],
  targets: ['m-1', 'm-2', 'm-3', 'm-4'],
  run: 'demo.run-1',
  at: AT,
};
const pause: RolloutCommand = { type: 'Pause', at: AT };
const resume: RolloutCommand = { type: 'Resume', at: AT };
const abort: RolloutCommand = { type: 'Abort', at: AT };
const succeed: RolloutCommand = { type: 'Succeed', at: LATER };
const revert: RolloutCommand = { type: 'Revert', reason: 'wave 2 did not converge', at: LATER };
const finishRevert: RolloutCommand = { type: 'FinishRevert', at: LATER };
const fail: RolloutCommand = { type: 'Fail', reason: 'the revert did not converge', at: LATER };

/** A history that leaves the rollout in `status`. */
const HISTORIES: Record<RolloutStatus, RolloutCommand[]> = {
  pending: [create],
  running: [create, plan],
  paused: [create, plan, pause],
  reverting: [create, plan, abort],
  succeeded: [create, plan, succeed],
  failed: [create, fail],
  'rolled-back': [create, plan, revert, finishRevert],
  aborted: [create, abort, finishRevert],
};

function inStatus(status: RolloutStatus) {
  const history = played(...HISTORIES[status]);
  expect(stateOf(history).rollout?.status).toBe(status);
  return given(...history);
}

/* ───────────── specifications ───────────── */

describe('Request', () => {
  it('creates the stream: a pending rollout with no waves yet', () => {
    const rollout = given()
      .when(create)
      .thenEvents([{ type: 'RolloutCreated', eventId: 'r-1.created', data: { group: 'demo', request } }]);
    expect(rollout).toEqual({
      id: ID,
      group: 'demo',
      service: 'media',
      version: '2.2.0',
      select: 'all',
      status: 'pending',
      previousVersion: '2.1.0',
      createdAt: AT.toISOString(),
      updatedAt: AT.toISOString(),
      waves: [],
      hosts: { done: [], pending: [], failed: [] },
    });
  });

  it('rejects a second request for the same rollout', () => {
    given(...played(create))
      .when(create)
      .thenRejects(ConflictError, /exists/);
  });

  it('rejects any other command on a rollout that does not exist', () => {
    given().when(pause).thenRejects(NotFoundError, '"r-1"');
  });
});

describe('operator commands', () => {
  it('pauses a pending or a running rollout', () => {
    for (const status of ['pending', 'running'] as const) {
      const rollout = inStatus(status)
        .when(pause)
        .thenEvents([{ type: 'RolloutPaused' }]);
      expect(rollout.status).toBe('paused');
    }
  });

  it('resumes a paused rollout as running', () => {
    expect(
      inStatus('paused')
        .when(resume)
        .thenEvents([{ type: 'RolloutResumed' }]).status,
    ).toBe('running');
  });

  it('aborts a pending, running or paused rollout: it reverts, to end aborted', () => {
    for (const status of ['pending', 'running', 'paused'] as const) {
      const rollout = inStatus(status)
        .when(abort)
        .thenEvents([
          {
            type: 'RolloutRevertStarted',
            data: { outcome: 'aborted', reason: 'operator: abort', at: AT.toISOString() },
          },
        ]);
      expect(rollout).toMatchObject({
        status: 'reverting',
        revert: { outcome: 'aborted', reason: 'operator: abort' },
      });
      expect(rollout.error).toBeUndefined();
    }
  });

  it('rejects a pause unless pending or running, naming the status and the command', () => {
    for (const status of ['paused', 'reverting', 'succeeded', 'failed', 'rolled-back', 'aborted'] as const) {
      const error = inStatus(status)
        .when(pause)
        .thenRejects(ConflictError, 'only a pending or running rollout can be paused');
      expect(error.message).toContain(`is ${status}`);
      expect(error.details).toEqual({ rolloutId: ID, rolloutStatus: status, command: 'pause' });
    }
  });

  it('rejects a resume unless paused', () => {
    for (const status of ['pending', 'running', 'reverting', 'succeeded', 'aborted'] as const)
      inStatus(status).when(resume).thenRejects(ConflictError, 'only a paused rollout can be resumed');
  });

  it('rejects an abort of a reverting rollout: it is already reverting', () => {
    inStatus('reverting').when(abort).thenRejects(ConflictError, 'it is already reverting');
  });

  it('rejects an abort of a rollout that has finished', () => {
    for (const status of ['succeeded', 'failed', 'rolled-back', 'aborted'] as const)
      inStatus(status).when(abort).thenRejects(ConflictError, 'nothing left to abort');
  });
});

describe('Plan', () => {
  it('moves a pending rollout to running, with its waves and every target pending', () => {
    const rollout = inStatus('pending')
      .when(plan)
      .thenEvents([{ type: 'RolloutPlanned', eventId: 'r-1.2.planned', data: { run: 'demo.run-1' } }]);
    expect(rollout).toMatchObject({
      status: 'running',
      waves: [
        { index: 0, hosts: ['m-1'], status: 'pending' },
        { index: 1, hosts: ['m-2', 'm-3'], status: 'pending' },
      ],
      hosts: { done: [], pending: ['m-1', 'm-2', 'm-3', 'm-4'], failed: [] },
    });
  });

  it("keeps a paused or reverting rollout's status, replacing the waves it works through; hosts done stay done", () => {
    const firstWaveDone: RolloutCommand[] = [
      create,
      plan,
      { type: 'StartWave', index: 0, at: AT },
      { type: 'SettleWave', index: 0, done: ['m-1'], failed: [], at: AT },
    ];
    for (const [command, status] of [
      [pause, 'paused'],
      [abort, 'reverting'],
    ] as const) {
      const rollout = given(...played(...firstWaveDone, command))
        .when({ ...plan, waves: [{ index: 0, hosts: ['m-2'] }], run: 'demo.run-2' })
        .thenEvents([{ type: 'RolloutPlanned' }]);
      const planned = [{ index: 0, hosts: ['m-2'], status: 'pending' }];
      // A revert plans waves of its own: the rollout's stay as they ended (who got the change, who never did).
      expect(rollout).toMatchObject(
        status === 'reverting' ? { status, revert: { waves: planned } } : { status, waves: planned },
      );
      if (status === 'reverting')
        expect(rollout?.waves[0]).toEqual({ index: 0, hosts: ['m-1'], status: 'done' });
      expect(rollout?.hosts.done).toEqual(['m-1']);
      expect([...(rollout?.hosts.pending ?? [])].sort()).toEqual(['m-2', 'm-3', 'm-4']);
    }
  });

  it('changes nothing when the plan is the one in force, or once the rollout is final', () => {
    inStatus('running').when(plan).thenNothing();
    inStatus('succeeded').when(plan).thenNothing();
    inStatus('aborted').when(plan).thenNothing();
  });
});

describe('waves', () => {
  it('starts a pending wave, once', () => {
    const rollout = inStatus('running')
      .when({ type: 'StartWave', index: 1, at: AT })
      .thenEvents([{ type: 'RolloutWaveStarted', eventId: 'r-1.3.wave-1-started' }]);
    expect(rollout.waves.map((wave) => wave.status)).toEqual(['pending', 'running']);
    given(...played(...HISTORIES.running, { type: 'StartWave', index: 1, at: AT }))
      .when({ type: 'StartWave', index: 1, at: AT })
      .thenNothing();
  });

  it('settles a wave done: only the hosts passed as done are done', () => {
    const rollout = given(...played(...HISTORIES.running, { type: 'StartWave', index: 1, at: AT }))
      .when({ type: 'SettleWave', index: 1, done: ['m-2'], failed: [], at: LATER })
      .thenEvents([{ type: 'RolloutWaveSettled', data: { index: 1, done: ['m-2'], failed: [] } }]);
    expect(rollout.waves[1]?.status).toBe('done');
    expect(rollout.hosts).toEqual({ done: ['m-2'], pending: ['m-1', 'm-3', 'm-4'], failed: [] });
    expect(rollout.updatedAt).toBe(LATER.toISOString());
  });

  it('settles a wave failed when a host failed', () => {
    const rollout = inStatus('running')
      .when({ type: 'SettleWave', index: 1, done: ['m-2'], failed: ['m-3'], at: LATER })
      .thenEvents([{ type: 'RolloutWaveSettled' }]);
    expect(rollout.waves[1]?.status).toBe('failed');
    expect(rollout.hosts).toEqual({ done: ['m-2'], pending: ['m-1', 'm-4'], failed: ['m-3'] });
  });

  it('changes nothing for a wave settled before, or once the rollout is final', () => {
    const settle: RolloutCommand = { type: 'SettleWave', index: 0, done: ['m-1'], failed: [], at: AT };
    given(...played(...HISTORIES.running, settle))
      .when(settle)
      .thenNothing();
    inStatus('succeeded').when(settle).thenNothing();
  });

  it('rejects a wave the plan does not have', () => {
    inStatus('running')
      .when({ type: 'StartWave', index: 7, at: AT })
      .thenRejects(ValidationError, /no wave 7/);
  });
});

describe('the end of a rollout', () => {
  it('succeeds from pending or running', () => {
    for (const status of ['pending', 'running'] as const)
      expect(
        inStatus(status)
          .when(succeed)
          .thenEvents([{ type: 'RolloutSucceeded' }]).status,
      ).toBe('succeeded');
  });

  it('changes nothing on Succeed in any other status', () => {
    for (const status of ['paused', 'reverting', 'succeeded', 'failed', 'rolled-back', 'aborted'] as const)
      inStatus(status).when(succeed).thenNothing();
  });

  it('reverts a failed pending, running or paused rollout, to end rolled back, with the reason as its error', () => {
    for (const status of ['pending', 'running', 'paused'] as const) {
      const rollout = inStatus(status)
        .when(revert)
        .thenEvents([
          {
            type: 'RolloutRevertStarted',
            data: { outcome: 'rolled-back', reason: 'wave 2 did not converge' },
          },
        ]);
      expect(rollout).toMatchObject({
        status: 'reverting',
        revert: { outcome: 'rolled-back', reason: 'wave 2 did not converge' },
        error: 'wave 2 did not converge',
      });
    }
  });

  it('changes nothing on Revert of a reverting or final rollout', () => {
    for (const status of ['reverting', 'succeeded', 'failed', 'rolled-back', 'aborted'] as const)
      inStatus(status).when(revert).thenNothing();
  });

  it('finishes a revert as what it was for: aborted or rolled back, both final', () => {
    const aborted = given(...played(create, plan, abort))
      .when(finishRevert)
      .thenEvents([
        { type: 'RolloutRevertFinished', eventId: 'r-1.4.aborted', data: { outcome: 'aborted' } },
      ]);
    expect(aborted.status).toBe('aborted');
    const rolledBack = given(...played(create, plan, revert))
      .when(finishRevert)
      .thenEvents([{ type: 'RolloutRevertFinished', data: { outcome: 'rolled-back' } }]);
    expect(rolledBack.status).toBe('rolled-back');
    for (const status of ['pending', 'running', 'paused', 'succeeded', 'aborted'] as const)
      inStatus(status).when(finishRevert).thenNothing();
  });

  it('fails any rollout that is not final, with the reason as its error', () => {
    for (const status of ['pending', 'running', 'paused', 'reverting'] as const) {
      const rollout = inStatus(status)
        .when(fail)
        .thenEvents([{ type: 'RolloutFailed' }]);
      expect(rollout).toMatchObject({ status: 'failed', error: 'the revert did not converge' });
    }
    for (const status of ['succeeded', 'failed', 'rolled-back', 'aborted'] as const)
      inStatus(status).when(fail).thenNothing();
  });

  it('derives every event id from the rollout id and the version it lands at', () => {
    const history = played(create, plan, pause, resume, abort, finishRevert);
    expect(history.map((event) => event.eventId)).toEqual([
      'r-1.created',
      'r-1.2.planned',
      'r-1.3.paused',
      'r-1.4.running',
      'r-1.5.reverting',
      'r-1.6.aborted',
    ]);
  });

  it('says which commands change the status: what the group mirrors', () => {
    const decide = (history: NewEvent<RolloutEvent>[], command: RolloutCommand) =>
      rolloutDecider.decide(command, stateOf(history), { rolloutId: ID }).outcome.statusChanged;
    expect(decide(played(create), plan)).toBe(true);
    expect(decide(played(create, plan), { type: 'StartWave', index: 0, at: AT })).toBe(false);
    expect(decide(played(create, plan, pause), plan)).toBe(false);
    expect(decide(played(create, plan), succeed)).toBe(true);
  });
});
