import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConflictError, NotFoundError, StaleVersionError, ValidationError } from '../shared/errors.ts';
import type { NewEvent } from '../shared/events.ts';
import { parseGroupDefinition } from '../shared/groups/compile.ts';
import type { GroupEvent, RolloutRequested } from '../shared/groups/events.ts';
import { changesService, type GroupCommand, groupDecider } from '../shared/groups/group-decider.ts';
import { documentOf, type GroupState, stateOfDocument } from '../shared/groups/group-state.ts';
import type { GroupDefinition, HostTypeDefinition, RolloutStatus } from '../shared/groups/model.ts';
import { deciderSpec } from './support/decider-spec.ts';

const DEMO = parseGroupDefinition(
  readFileSync(new URL('../events/groups/demo-telephony.yaml', import.meta.url), 'utf8'),
  'yaml',
);
const AT = new Date('2031-02-03T04:05:06.000Z');

function demo(change: (definition: GroupDefinition) => void = () => {}): GroupDefinition {
  const definition = structuredClone(DEMO);
  change(definition);
  return definition;
}

const withMediaCount = (count: number) =>
  demo((d) => {
    (d.hostTypes.media as { count?: number }).count = count;
  });
const withMediaVersion = (version: string) =>
  demo((d) => {
    (d.hostTypes.media?.services.media as { version: string }).version = version;
  });

/* ───────────── given / when / then over the decider ───────────── */

/** `played(history, command)` appends what the command decides to the history: the state the next one is decided on. */
const { given, played } = deciderSpec(groupDecider, {
  stream: 'group#demo',
  recordedAt: AT.toISOString(),
  context: { name: 'demo' },
});

/* ───────────── events ───────────── */

const defined = (definition: GroupDefinition = DEMO, eventId = 'define#demo#1'): NewEvent<GroupEvent> => ({
  type: 'GroupDefined',
  eventId,
  data: { definition, source: 'yaml', definedAt: AT.toISOString() },
});
const started: NewEvent<GroupEvent> = {
  type: 'GroupStarted',
  eventId: 'start#demo#2',
  data: { startedAt: AT.toISOString() },
};
const stopped: NewEvent<GroupEvent> = {
  type: 'GroupStopped',
  eventId: 'stop#demo#3',
  data: { stoppedAt: AT.toISOString() },
};
function requested(rolloutId: string, request: Partial<RolloutRequested['data']> = {}): NewEvent<GroupEvent> {
  return {
    type: 'RolloutRequested',
    eventId: `rollout#${rolloutId}#requested`,
    data: {
      service: 'media',
      version: '2.2.0',
      select: 'all',
      rolloutId,
      requestedAt: AT.toISOString(),
      previousVersion: '2.1.0',
      ...request,
    },
  };
}
const statusChanged = (rolloutId: string, status: RolloutStatus): NewEvent<GroupEvent> => ({
  type: 'RolloutStatusChanged',
  eventId: `${rolloutId}.${status}.9`,
  data: { rolloutId, status, at: AT.toISOString(), rolloutVersion: 9 },
});

function definitionIn(event: NewEvent<GroupEvent> | undefined): GroupDefinition {
  if (event?.type !== 'GroupDefined') throw new Error(`expected GroupDefined, got ${event?.type}`);
  return event.data.definition;
}

/* ───────────── specifications ───────────── */

describe('Define', () => {
  it('creates a group: GroupDefined at version 1, compiled in the state', () => {
    const decision = given()
      .when({ type: 'Define', definition: DEMO, source: 'yaml', at: AT })
      .thenEvents([
        { type: 'GroupDefined', eventId: 'define#demo#1', data: { definition: DEMO, source: 'yaml' } },
      ]);
    expect(decision.outcome).toEqual({ kind: 'defined', outcome: 'created' });
    const state = given(defined()).state;
    expect(state).toMatchObject({ exists: true, definitionVersion: 1, compiled: { definitionVersion: 1 } });
  });

  it('changes nothing for the same definition', () => {
    given(defined())
      .when({ type: 'Define', definition: demo(), source: 'json', at: AT })
      .thenNothing({ kind: 'defined', outcome: 'unchanged' });
  });

  it('rejects a definition that does not compile, appending nothing', () => {
    const cyclic = demo((d) => {
      d.dependencies.db = ['call-router'];
    });
    given(defined())
      .when({ type: 'Define', definition: cyclic, source: 'yaml', at: AT })
      .thenRejects(ValidationError, /cycle/);
  });

  it('rejects a definition whose If-Match-like precondition names another version', () => {
    const error = given(defined())
      .when({
        type: 'Define',
        definition: withMediaCount(3),
        source: 'yaml',
        preconditions: { matching: { versions: [7] } },
        at: AT,
      })
      .thenRejects(StaleVersionError);
    expect(error.details).toMatchObject({ precondition: 'matching', versions: [7], current: 1 });
  });

  it('rejects a create-only definition of a group that exists', () => {
    given(defined())
      .when({
        type: 'Define',
        definition: demo(),
        source: 'yaml',
        preconditions: { notMatching: {} },
        at: AT,
      })
      .thenRejects(StaleVersionError, /exists/);
  });

  it('rejects a definition that changes the version of the service an active rollout rolls out', () => {
    const error = given(defined(), started, requested('r-1'))
      .when({ type: 'Define', definition: withMediaVersion('2.5.0'), source: 'yaml', at: AT })
      .thenRejects(ConflictError, /rollout r-1/);
    expect(error.message).toContain('pending');
    expect(error.details).toMatchObject({
      rolloutId: 'r-1',
      rolloutStatus: 'pending',
      service: 'media',
      reason: 'rollout-active',
    });
  });

  it("rejects a definition that changes the config of the active rollout's service, naming its status", () => {
    const changed = demo((d) => {
      const media = d.hostTypes.media?.services.media;
      if (media) media.config = { ...media.config, 'codec.preferred': 'g722' };
    });
    const error = given(defined(), started, requested('r-1'), statusChanged('r-1', 'running'))
      .when({ type: 'Define', definition: changed, source: 'yaml', at: AT })
      .thenRejects(ConflictError);
    expect(error.details).toMatchObject({ rolloutId: 'r-1', rolloutStatus: 'running' });
  });

  it('accepts a count change while a rollout is active: the reconcile plans with both', () => {
    given(defined(), started, requested('r-1'))
      .when({ type: 'Define', definition: withMediaCount(4), source: 'yaml', at: AT })
      .thenEvents([{ type: 'GroupDefined', eventId: 'define#demo#4' }]);
  });

  it('accepts a change of another service while a rollout is active', () => {
    const otherService = demo((d) => {
      (d.hostTypes['call-router']?.services['call-router'] as { version: string }).version = '1.5.0';
    });
    given(defined(), started, requested('r-1'))
      .when({ type: 'Define', definition: otherService, source: 'yaml', at: AT })
      .thenEvents([{ type: 'GroupDefined' }]);
  });

  it('accepts any change once the rollout has ended (and rolls the declared change out)', () => {
    given(defined(), started, requested('r-1'), statusChanged('r-1', 'aborted'))
      .when({ type: 'Define', definition: withMediaVersion('2.5.0'), source: 'yaml', at: AT })
      .thenEvents([{ type: 'GroupDefined' }, { type: 'RolloutRequested' }]);
  });
});

describe('Define on a running group: declared changes roll out', () => {
  const defineAs = (definition: GroupDefinition): GroupCommand => ({
    type: 'Define',
    definition,
    source: 'yaml',
    at: AT,
  });
  const rolloutIdAt = (version: number, what: string) =>
    `r-${AT.getTime().toString(36).padStart(9, '0')}-d${version}-${what}`;

  it('requests a rollout of the changed service in the same append, over the whole group, naming the cause', () => {
    const { outcome } = given(defined(), started)
      .when(defineAs(withMediaVersion('2.2.0')))
      .thenEvents([
        {
          type: 'GroupDefined',
          eventId: 'define#demo#3',
          data: { declared: [expect.objectContaining({ service: 'media' })] },
        },
        {
          type: 'RolloutRequested',
          data: {
            service: 'media',
            version: '2.2.0',
            select: 'all',
            rolloutId: rolloutIdAt(4, 'media'),
            cause: { kind: 'declared', definitionVersion: 3 },
            previousVersion: '2.1.0',
            from: expect.objectContaining({ version: '2.1.0' }),
          },
        },
      ]);
    expect(outcome).toMatchObject({ kind: 'defined', outcome: 'updated', requested: { service: 'media' } });
  });

  it('rolls out nothing for a stopped group, a count change, or the same definition', () => {
    given(defined())
      .when(defineAs(withMediaVersion('2.2.0')))
      .thenEvents([{ type: 'GroupDefined' }]);
    given(defined(), started)
      .when(defineAs(withMediaCount(5)))
      .thenEvents([{ type: 'GroupDefined' }]);
    given(defined(), started).when(defineAs(DEMO)).thenNothing({ kind: 'defined', outcome: 'unchanged' });
  });

  it('queues the other changed services: one rollout at a time, the next requested when the active one ends', () => {
    const both = demo((d) => {
      (d.hostTypes.media?.services.media as { version: string }).version = '2.2.0';
      (d.hostTypes['call-router']?.services['call-router'] as { version: string }).version = '1.5.0';
    });
    const { state, events } = given(defined(), started)
      .when(defineAs(both))
      .thenEvents([{ type: 'GroupDefined' }, { type: 'RolloutRequested', data: { service: 'call-router' } }]);
    expect(state.declaredQueue).toEqual([
      expect.objectContaining({ service: 'media', definitionVersion: 3 }),
    ]);
    const first = (events[1] as Extract<GroupEvent, { type: 'RolloutRequested' }>).data.rolloutId;

    const history = [defined(), started, ...events];
    given(...history)
      .when({ type: 'AdoptRollout', rolloutId: first, rolloutVersion: 7, at: AT })
      .thenEvents([
        { type: 'RolloutStatusChanged', data: { rolloutId: first, status: 'succeeded' } },
        {
          type: 'RolloutRequested',
          data: { service: 'media', version: '2.2.0', cause: { kind: 'declared', definitionVersion: 3 } },
        },
      ]);
  });

  it('gives a failed declared rollout its service spec back in the definition, and goes on with the queue', () => {
    const both = demo((d) => {
      (d.hostTypes.media?.services.media as { version: string }).version = '2.2.0';
      (d.hostTypes['call-router']?.services['call-router'] as { version: string }).version = '1.5.0';
    });
    const declared = played([defined(), started], defineAs(both));
    const first = (declared.at(-1) as Extract<GroupEvent, { type: 'RolloutRequested' }>).data.rolloutId;
    const reverting = played(declared, {
      type: 'RecordRolloutStatus',
      rolloutId: first,
      status: 'reverting',
      rolloutVersion: 6,
      at: AT,
    });
    const restored = reverting.at(-1);
    expect(restored).toMatchObject({ type: 'GroupDefined', data: { rolloutId: first, restored: true } });
    expect(definitionIn(restored).hostTypes['call-router']?.services['call-router']?.version).not.toBe(
      '1.5.0',
    );
    expect(definitionIn(restored).hostTypes.media?.services.media?.version).toBe('2.2.0');

    given(...reverting)
      .when({
        type: 'RecordRolloutStatus',
        rolloutId: first,
        status: 'rolled-back',
        rolloutVersion: 8,
        at: AT,
      })
      .thenEvents([
        { type: 'RolloutStatusChanged', data: { status: 'rolled-back' } },
        { type: 'RolloutRequested', data: { service: 'media' } },
      ]);
  });

  it('replaces the hosts of a host type whose instance type changed, surge-first by the planner', () => {
    const bigger = demo((d) => {
      (d.hostTypes.media as { instanceType: string }).instanceType = 'c7g.2xlarge';
    });
    given(defined(), started)
      .when(defineAs(bigger))
      .thenEvents([
        { type: 'GroupDefined' },
        {
          type: 'RolloutRequested',
          data: {
            service: 'media',
            replaceHostType: 'media',
            select: 'all',
            from: { launch: expect.objectContaining({ instanceType: DEMO.hostTypes.media?.instanceType }) },
          },
        },
      ]);
  });

  it('rejects a definition that changes the launch fields of the host type being replaced', () => {
    const bigger = demo((d) => {
      (d.hostTypes.media as { instanceType: string }).instanceType = 'c7g.2xlarge';
    });
    const biggest = demo((d) => {
      (d.hostTypes.media as { instanceType: string }).instanceType = 'c7g.4xlarge';
    });
    given(...played([defined(), started], defineAs(bigger)))
      .when(defineAs(biggest))
      .thenRejects(ConflictError, /rollout/);
  });
});

describe('RequestRollout: service operations and reverts', () => {
  const request = (over: Partial<RolloutRequested['data']>): GroupCommand => ({
    type: 'RequestRollout',
    rolloutId: 'r-9',
    request: { service: 'media', ...over },
    at: AT,
  });

  it('records a stop with what the hosts ran (from) and no version', () => {
    given(defined(), started)
      .when(request({ operation: 'stop' }))
      .thenEvents([
        {
          type: 'RolloutRequested',
          data: { operation: 'stop', service: 'media', from: expect.objectContaining({ version: '2.1.0' }) },
        },
      ]);
  });

  it('rejects a service operation on a service the group does not run as not found', () => {
    given(defined(), started)
      .when(request({ service: 'nope', operation: 'start' }))
      .thenRejects(NotFoundError);
  });

  it('rejects a service operation that names a version', () => {
    given(defined(), started)
      .when(request({ operation: 'stop', version: '3' }))
      .thenRejects(ValidationError, /stop rollout takes neither/);
  });

  it('rejects removing a service others depend on', () => {
    given(defined(), started)
      .when(request({ service: 'db', operation: 'remove' }))
      .thenRejects(ConflictError, /depend on it/);
  });

  it('keeps revertOf on the request', () => {
    given(defined(), started)
      .when(request({ version: '2.0.0', revertOf: 'r-1' }))
      .thenEvents([{ type: 'RolloutRequested', data: { revertOf: 'r-1' } }]);
  });

  it('adopts a whole-group stop as the definition (stopped: true) and a removal without the service', () => {
    const stopping = played([defined(), started], request({ operation: 'stop' }));
    const stopAdopted = played(stopping, {
      type: 'AdoptRollout',
      rolloutId: 'r-9',
      rolloutVersion: 5,
      at: AT,
    });
    expect(definitionIn(stopAdopted.at(-2)).hostTypes.media?.services.media?.stopped).toBe(true);

    const withMetrics = demo((d) => {
      (d.hostTypes.media as HostTypeDefinition).services.metrics = { version: '1.0.0' };
      d.dependencies.metrics = [];
    });
    const removing = played(
      [defined(withMetrics), started],
      request({ service: 'metrics', operation: 'remove' }),
    );
    const removed = played(removing, { type: 'AdoptRollout', rolloutId: 'r-9', rolloutVersion: 5, at: AT });
    const after = definitionIn(removed.at(-2));
    expect(after.hostTypes.media?.services.metrics).toBeUndefined();
    expect(after.dependencies.metrics).toBeUndefined();
  });

  it("rejects removing a host type's only service: the definition would not compile", () => {
    given(defined(), started)
      .when(request({ service: 'lb', operation: 'remove' }))
      .thenRejects(ConflictError, /at least one service/);
  });
});

describe('changesService', () => {
  it('sees a new host type running the service at a version it ran before as no change', () => {
    const more = demo((d) => {
      d.hostTypes.media2 = structuredClone(d.hostTypes.media) as HostTypeDefinition;
    });
    expect(changesService(DEMO, more, 'media')).toBe(false);
    expect(changesService(DEMO, withMediaVersion('3'), 'media')).toBe(true);
    expect(changesService(DEMO, withMediaVersion('3'), 'db')).toBe(false);
  });
});

describe('Start, Stop, Delete', () => {
  it('starts a stopped group once; starting it again changes nothing', () => {
    given(defined())
      .when({ type: 'Start', at: AT })
      .thenEvents([{ type: 'GroupStarted', eventId: 'start#demo#2' }]);
    given(defined(), started).when({ type: 'Start', at: AT }).thenNothing({ kind: 'run', changed: false });
  });

  it('rejects starting a group that does not exist', () => {
    given().when({ type: 'Start', at: AT }).thenRejects(NotFoundError, '"demo"');
  });

  it('rejects deleting a running group, saying to stop it first', () => {
    const error = given(defined(), started)
      .when({ type: 'Delete', at: AT })
      .thenRejects(ConflictError, /stop it first/);
    expect(error.details).toMatchObject({ reason: 'group-running', running: true });
  });

  it('deletes a stopped group, which then no longer exists', () => {
    const history = played([defined(), started, stopped], { type: 'Delete', at: AT });
    expect(history.at(-1)).toMatchObject({ type: 'GroupDeleted', eventId: 'delete#demo#4' });
    expect(given(...history).state).toMatchObject({ exists: false, streamVersion: 4 });
  });

  it('rejects a delete on a stale version', () => {
    given(defined(), started, stopped)
      .when({ type: 'Delete', preconditions: { matching: { versions: [2] } }, at: AT })
      .thenRejects(StaleVersionError);
  });
});

describe('RequestRollout', () => {
  const request = { service: 'media', version: '2.2.0' };

  it('records the request with the version it replaces', () => {
    const decision = given(defined(), started)
      .when({ type: 'RequestRollout', rolloutId: 'r-1', request, at: AT })
      .thenEvents([
        {
          type: 'RolloutRequested',
          eventId: 'rollout#r-1#requested',
          data: {
            rolloutId: 'r-1',
            service: 'media',
            version: '2.2.0',
            select: 'all',
            previousVersion: '2.1.0',
          },
        },
      ]);
    expect(decision.outcome).toMatchObject({ kind: 'rollout-requested', requested: { rolloutId: 'r-1' } });
  });

  it('rejects a rollout while another holds the group, naming it and its status', () => {
    const error = given(defined(), started, requested('r-1'), statusChanged('r-1', 'paused'))
      .when({ type: 'RequestRollout', rolloutId: 'r-2', request, at: AT })
      .thenRejects(ConflictError, /r-1/);
    expect(error.details).toMatchObject({
      rolloutId: 'r-1',
      rolloutStatus: 'paused',
      reason: 'rollout-active',
    });
  });

  it('rejects a rollout of a stopped group, of a service it does not run, and without a change', () => {
    given(defined())
      .when({ type: 'RequestRollout', rolloutId: 'r-1', request, at: AT })
      .thenRejects(ConflictError, /not running/);
    given(defined(), started)
      .when({ type: 'RequestRollout', rolloutId: 'r-1', request: { service: 'fax', version: '1' }, at: AT })
      .thenRejects(ValidationError, /"fax"/);
    given(defined(), started)
      .when({ type: 'RequestRollout', rolloutId: 'r-1', request: { service: 'media' }, at: AT })
      .thenRejects(ValidationError, /version or a config/);
    given(defined(), started)
      .when({ type: 'RequestRollout', rolloutId: 'r-1', request: { ...request, select: 'max(1,)' }, at: AT })
      .thenRejects(ValidationError, /position 7/);
  });
});

describe('RecordRolloutStatus', () => {
  const running: GroupCommand = {
    type: 'RecordRolloutStatus',
    rolloutId: 'r-1',
    status: 'running',
    rolloutVersion: 2,
    reason: 'reconcile: planned',
    at: AT,
  };

  it('mirrors a status change of the active rollout, with an id from its stream version', () => {
    given(defined(), started, requested('r-1'))
      .when(running)
      .thenEvents([
        {
          type: 'RolloutStatusChanged',
          eventId: 'r-1.running.2',
          data: { rolloutId: 'r-1', status: 'running', rolloutVersion: 2, reason: 'reconcile: planned' },
        },
      ]);
  });

  it('appends the same rollout and status once', () => {
    const history = played([defined(), started, requested('r-1')], running);
    given(...history)
      .when(running)
      .thenNothing({ kind: 'rollout-status', recorded: false });
    given(...history)
      .when({ ...running, rolloutVersion: 3 })
      .thenNothing();
  });

  it('frees the group on a final status, and records nothing for it again', () => {
    const aborted: GroupCommand = { ...running, status: 'aborted', rolloutVersion: 4 };
    const history = played([defined(), started, requested('r-1')], aborted);
    expect(given(...history).state.activeRollout).toBeUndefined();
    given(...history)
      .when(aborted)
      .thenNothing();
  });

  it('records nothing for a rollout the group does not know as active', () => {
    given(defined(), started).when(running).thenNothing({ recorded: false });
  });
});

describe('AdoptRollout', () => {
  const adopt: GroupCommand = { type: 'AdoptRollout', rolloutId: 'r-1', rolloutVersion: 5, at: AT };

  it('makes a whole-group rollout the definition and records its success in one append', () => {
    const decision = given(defined(), started, requested('r-1'))
      .when(adopt)
      .thenEvents([
        { type: 'GroupDefined', eventId: 'rollout#r-1#adopted', data: { source: 'json', rolloutId: 'r-1' } },
        { type: 'RolloutStatusChanged', eventId: 'r-1.succeeded.5', data: { status: 'succeeded' } },
      ]);
    expect(decision.outcome).toEqual({
      kind: 'rollout-adopted',
      recorded: true,
      adopted: true,
      definitionVersion: 4,
    });
    expect(definitionIn(decision.events[0]).hostTypes.media?.services.media?.version).toBe('2.2.0');
  });

  it('adopts onto the definition as changed meanwhile, keeping the other change', () => {
    const history = played([defined(), started, requested('r-1')], {
      type: 'Define',
      definition: withMediaCount(5),
      source: 'yaml',
      at: AT,
    });
    const decision = given(...history)
      .when(adopt)
      .thenEvents([{ type: 'GroupDefined' }, { type: 'RolloutStatusChanged' }]);
    const adopted = definitionIn(decision.events[0]);
    expect(adopted.hostTypes.media).toMatchObject({ count: 5, services: { media: { version: '2.2.0' } } });
    const state = given(...history, ...decision.events).state;
    expect(state).toMatchObject({ definitionVersion: 5, compiled: { definitionVersion: 5 } });
    expect(state.compiled?.hostTypes.media?.desired).toBe(5);
    expect(state.activeRollout).toBeUndefined();
  });

  it("records a canary's success without touching the definition", () => {
    const decision = given(defined(), started, requested('r-1', { select: '1' }))
      .when(adopt)
      .thenEvents([{ type: 'RolloutStatusChanged', data: { status: 'succeeded' } }]);
    expect(decision.outcome).toMatchObject({ recorded: true, adopted: false, definitionVersion: 1 });
  });

  it('records nothing, twice or for a rollout no longer active', () => {
    const history = played([defined(), started, requested('r-1')], adopt);
    given(...history)
      .when(adopt)
      .thenNothing({ kind: 'rollout-adopted', recorded: false, adopted: false });
  });
});

describe('RaiseAlarm', () => {
  const alarm: GroupCommand = {
    type: 'RaiseAlarm',
    alarmId: 'replacements#media#demo-media-3',
    alarm: 'repeated-host-failures',
    detail: '3 media hosts died',
    hostIds: ['demo-media-1', 'demo-media-2', 'demo-media-3'],
    at: AT,
  };

  it('raises an alarm with its own id as the event id', () => {
    given(defined(), started)
      .when(alarm)
      .thenEvents([
        {
          type: 'AlarmRaised',
          eventId: 'replacements#media#demo-media-3',
          data: {
            alarm: 'repeated-host-failures',
            detail: '3 media hosts died',
            hostIds: ['demo-media-1', 'demo-media-2', 'demo-media-3'],
          },
        },
      ]);
  });

  it('appends an alarm raised twice once, knowing it from the state alone', () => {
    const history = played([defined(), started], alarm);
    given(...history)
      .when(alarm)
      .thenNothing({ kind: 'alarm', raised: false });
    // The document carries what the dedupe needs: a state rebuilt from it knows the alarm too.
    const document = documentOf(given(...history).state);
    if (!document) throw new Error('the group exists');
    const fromDocument: GroupState = stateOfDocument(structuredClone(document));
    expect(groupDecider.decide(alarm, fromDocument, { name: 'demo' }).events).toEqual([]);
  });

  it('rejects an alarm on a group that does not exist', () => {
    given().when(alarm).thenRejects(NotFoundError);
  });
});

describe('alarm episodes: RaiseAlarm with an episode, ClearAlarm', () => {
  const episode = 'rule[2]#demo-media-7';
  const tick = (n: number): Extract<GroupCommand, { type: 'RaiseAlarm' }> => ({
    type: 'RaiseAlarm',
    alarmId: `rule[2]#demo-media-7#tick-${n}`,
    alarm: 'media-down',
    detail: 'media is failed on demo-media-7',
    hostIds: ['demo-media-7'],
    episode,
    at: AT,
  });
  const clear: GroupCommand = { type: 'ClearAlarm', episode, at: new Date('2031-02-03T05:00:00.000Z') };

  it('raises the first alarm of an episode, naming it, and holds the episode open', () => {
    const { state } = given(defined(), started)
      .when(tick(1))
      .thenEvents([{ type: 'AlarmRaised', eventId: 'rule[2]#demo-media-7#tick-1', data: { episode } }]);
    expect(state.openAlarms).toEqual({
      [episode]: { alarmId: 'rule[2]#demo-media-7#tick-1', raisedAt: AT.toISOString() },
    });
  });

  it('appends nothing for another alarm of an open episode, whatever its id: once per episode, not per tick', () => {
    given(...played([defined(), started], tick(1)))
      .when(tick(2))
      .thenNothing({ kind: 'alarm', raised: false });
  });

  it('clears an open episode, naming the alarm that opened it, after which the episode alarms again', () => {
    const history = played([defined(), started], tick(1));
    const { state } = given(...history)
      .when(clear)
      .thenEvents([
        {
          type: 'AlarmCleared',
          eventId: 'rule[2]#demo-media-7#tick-1#cleared',
          data: { episode, alarmId: 'rule[2]#demo-media-7#tick-1', at: '2031-02-03T05:00:00.000Z' },
        },
      ]);
    expect(state.openAlarms).toBeUndefined();
    given(...played(history, clear))
      .when(tick(3))
      .thenEvents([{ type: 'AlarmRaised', eventId: 'rule[2]#demo-media-7#tick-3', data: { episode } }]);
  });

  it('answers a clearing with the alarm that opened the episode', () => {
    const decision = given(...played([defined(), started], tick(1)))
      .when(clear)
      .decide();
    expect(decision.outcome).toEqual({
      kind: 'alarm-cleared',
      opened: { alarmId: 'rule[2]#demo-media-7#tick-1', raisedAt: AT.toISOString() },
    });
  });

  it('clears nothing for an episode that is not open: never raised, or cleared already', () => {
    given(defined(), started).when(clear).thenNothing({ kind: 'alarm-cleared' });
    given(...played([defined(), started], tick(1), clear))
      .when(clear)
      .thenNothing({ kind: 'alarm-cleared' });
  });

  it('keeps the open episodes in the document, so a state rebuilt from it refuses the next tick too', () => {
    const history = played([defined(), started], tick(1));
    const document = documentOf(given(...history).state);
    if (!document) throw new Error('the group exists');
    expect(document.openAlarms).toEqual({
      [episode]: { alarmId: 'rule[2]#demo-media-7#tick-1', raisedAt: AT.toISOString() },
    });
    const fromDocument = stateOfDocument(structuredClone(document));
    expect(groupDecider.decide(tick(2), fromDocument, { name: 'demo' }).events).toEqual([]);
    expect(groupDecider.decide(clear, fromDocument, { name: 'demo' }).events).toHaveLength(1);
  });

  it('raises alarms of different episodes independently', () => {
    given(...played([defined(), started], tick(1)))
      .when({ ...tick(1), alarmId: 'rule[2]#demo-media-8#tick-1', episode: 'rule[2]#demo-media-8' })
      .thenEvents([{ type: 'AlarmRaised', data: { episode: 'rule[2]#demo-media-8' } }]);
  });

  it('rejects clearing an episode of a group that does not exist', () => {
    given().when(clear).thenRejects(NotFoundError);
  });
});

describe('scale episodes: Scale, EndScaleEpisode', () => {
  const episode = 'rule[0]#*';
  const step = (delta: number): GroupCommand => ({
    type: 'Scale',
    hostType: 'media',
    delta,
    rule: 'rule[0]',
    episode,
    because: 'hosts.running(media) < 3',
    at: AT,
  });
  const end: GroupCommand = { type: 'EndScaleEpisode', episode, at: new Date('2031-02-03T05:00:00.000Z') };

  it('scales a host type once per episode and the compiled group wants the new count', () => {
    const { state } = given(defined(), started)
      .when(step(1))
      .thenEvents([{ type: 'CapacityScaled', data: { hostType: 'media', from: 2, to: 3, episode } }]);
    expect(state.compiled?.hostTypes.media?.desired).toBe(3);
    given(...played([defined(), started], step(1)))
      .when(step(1))
      .thenNothing({ kind: 'scaled' });
  });

  it('keeps within the host type max and min, and records nothing when that changes nothing', () => {
    const { state } = given(defined(), started)
      .when({ ...step(0), count: 40 } as GroupCommand)
      .thenEvents([{ type: 'CapacityScaled', data: { from: 2, to: 6 } }]);
    expect(state.compiled?.hostTypes.media?.desired).toBe(6);
    given(defined(), started).when(step(0)).thenNothing({ kind: 'scaled' });
  });

  it('ends an open episode so the rule may scale again, and a new definition brings its own count back', () => {
    const history = played([defined(), started], step(1));
    const { state } = given(...history)
      .when(end)
      .thenEvents([{ type: 'ScaleEpisodeEnded', data: { episode } }]);
    expect(state.openScales).toBeUndefined();
    expect(stateOfDocument(documentOf(state) as never).compiled?.hostTypes.media?.desired).toBe(3);
    given(...played(history, end))
      .when(step(1))
      .thenEvents([{ type: 'CapacityScaled', data: { from: 3, to: 4 } }]);
    given(defined(), started).when(end).thenNothing({ kind: 'scale-episode-ended', ended: false });
  });

  it('rejects scaling a host type the group does not have', () => {
    given(defined(), started)
      .when({ ...step(1), hostType: 'nope' } as GroupCommand)
      .thenRejects(ValidationError, /no host type nope/);
  });
});
