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

  it('accepts any change once the rollout has ended', () => {
    given(defined(), started, requested('r-1'), statusChanged('r-1', 'aborted'))
      .when({ type: 'Define', definition: withMediaVersion('2.5.0'), source: 'yaml', at: AT })
      .thenEvents([{ type: 'GroupDefined' }]);
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
