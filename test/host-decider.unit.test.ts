import { describe, expect, it } from 'vitest';
import { ConflictError, NotFoundError } from '../shared/errors.ts';
import { type HostEvent, hostStream, type NewEvent, type RecordedEvent } from '../shared/events.ts';
import { fold } from '../shared/fold.ts';
import type { DesiredHostState } from '../shared/groups/model.ts';
import {
  evolveHost,
  type HostCommand,
  type HostStreamState,
  hostDecider,
} from '../shared/hosts/host-decider.ts';
import type { IngestConfig } from '../shared/ingest.ts';
import { DEFAULT_BANDS } from '../shared/metrics.ts';
import { newHostSecret, signSnapshot } from '../shared/signing.ts';
import { deciderSpec } from './support/decider-spec.ts';
import { machineState, unsignedSnapshot } from './support/fixtures.ts';

const T0 = new Date('2026-11-25T10:00:00.000Z');
const SECRET = newHostSecret();
const CONFIG: IngestConfig = {
  clockSkewSeconds: 300,
  maxSnapshotBytes: 1024 * 1024,
  heartbeatCoalesceSeconds: 60,
  bands: DEFAULT_BANDS,
};
const IDENTITY = { hostId: 'cr-1', group: 'demo', hostType: 'call-router', roles: ['call-router'] };

const registered: NewEvent = {
  type: 'HostRegistered',
  eventId: 'register#cr-1',
  data: { ...IDENTITY, registeredAt: T0.toISOString() },
};

/** given(events).when(command, ctx?).thenEmits(events) — or .thenRejects(error). */
const { given, record: recorded } = deciderSpec(hostDecider, {
  stream: hostStream('cr-1'),
  recordedAt: T0.toISOString(),
  context: { secret: SECRET },
});

function observe(seq: number, state = machineState(), at = T0, now = at): HostCommand {
  const snapshot = signSnapshot(SECRET, unsignedSnapshot(seq, at, state));
  return {
    type: 'Observe',
    snapshot,
    key: `snapshots/cr-1/${seq}.json`,
    receivedAt: at,
    now,
    config: CONFIG,
  };
}

/** The event an accepted snapshot appends, as the decider itself decides it. */
function observedEvent(history: NewEvent<HostEvent>[], seq: number, state = machineState(), at = T0) {
  const [event] = given(...history)
    .when(observe(seq, state, at))
    .decide().events;
  if (!event) throw new Error(`snapshot ${seq} changed nothing`);
  return event;
}

function desired(stateVersion: number, version = '1.4.0'): DesiredHostState {
  return {
    hostId: 'cr-1',
    group: 'demo',
    hostType: 'call-router',
    stateVersion,
    services: { 'call-router': { version } },
    config: { 'sip.port': '5060' },
    mode: 'running',
  };
}

function assigned(stateVersion: number): NewEvent<HostEvent> {
  return {
    type: 'StateAssigned',
    eventId: `cr-1.assigned.${stateVersion}`,
    data: { state: desired(stateVersion), assignedAt: T0.toISOString(), by: { reason: 'rollout' } },
  };
}

function terminated(instanceId: string): NewEvent<HostEvent> {
  return {
    type: 'InstanceTerminated',
    eventId: `cr-1.terminated.${instanceId}`,
    data: { instanceId, reason: 'gone', status: 'failed', at: T0.toISOString() },
  };
}

describe('hostDecider: Register', () => {
  it('records HostRegistered for a new host', () => {
    const outcome = given().when({ type: 'Register', host: IDENTITY, at: T0 }).thenEmits([registered]);
    expect(outcome).toEqual({ kind: 'registered' });
  });

  it('rejects registering a host twice', () => {
    given(registered)
      .when({ type: 'Register', host: IDENTITY, at: T0 })
      .thenRejects(ConflictError, 'host cr-1 exists');
  });
});

describe('hostDecider: Observe', () => {
  it('records a changed snapshot as StateObserved with its receipt time and metrics', () => {
    const outcome = given(registered)
      .when(observe(1))
      .thenEmits([
        {
          type: 'StateObserved',
          eventId: 'snapshots/cr-1/1.json',
          data: {
            seq: 1,
            observedAt: T0.toISOString(),
            changes: expect.arrayContaining([{ op: 'added', path: '/status', new: 'running' }]),
            receivedAt: T0.toISOString(),
            metrics: { load: 0.2, sessions: { voice: 3, sms: 0, mms: 0, video: 0 } },
          },
        },
      ]);
    expect(outcome).toMatchObject({ kind: 'observed', verdict: { kind: 'changed' } });
  });

  it('records nothing for a heartbeat, and asks for the lastSeen write only once it is stale', () => {
    const history = [registered, observedEvent([registered], 1)];
    const soon = new Date(T0.getTime() + 10_000);
    expect(
      given(...history)
        .when(observe(2, machineState(), soon))
        .thenEmits([]),
    ).toEqual({
      kind: 'observed',
      verdict: { kind: 'heartbeat' },
    });
    const later = new Date(T0.getTime() + 120_000);
    expect(
      given(...history)
        .when(observe(2, machineState(), later))
        .thenEmits([]),
    ).toMatchObject({
      verdict: {
        kind: 'heartbeat',
        update: { hostId: 'cr-1', version: 2, lastSeq: 2, lastSeen: later.toISOString() },
      },
    });
  });

  it('records nothing for a duplicate of the last accepted snapshot', () => {
    const history = [registered, observedEvent([registered], 1)];
    expect(
      given(...history)
        .when(observe(1))
        .thenEmits([]),
    ).toEqual({
      kind: 'observed',
      verdict: { kind: 'duplicate' },
    });
  });

  it('records nothing for an older snapshot, leaving the caller to tell a duplicate from a replay', () => {
    const first = observedEvent([registered], 1);
    const second = observedEvent([registered, first], 2, machineState({ status: 'draining' }));
    expect(given(registered, first, second).when(observe(1)).thenEmits([])).toEqual({
      kind: 'observed',
      verdict: { kind: 'stale', lastSeq: 2 },
    });
  });

  it('answers unknown-host for a host with no registration or no secret', () => {
    expect(given().when(observe(1)).thenEmits([])).toEqual({
      kind: 'observed',
      verdict: { kind: 'unknown-host' },
    });
    expect(given(registered).when(observe(1), {}).thenEmits([])).toEqual({
      kind: 'observed',
      verdict: { kind: 'unknown-host' },
    });
  });

  it('rejects a snapshot signed with another secret, recording nothing', () => {
    expect(given(registered).when(observe(1), { secret: newHostSecret() }).thenEmits([])).toMatchObject({
      verdict: { kind: 'rejected', rejection: { reason: 'bad-signature' } },
    });
  });
});

describe('hostDecider: RecordTermination', () => {
  const command = (instanceId: string): HostCommand => ({
    type: 'RecordTermination',
    termination: { instanceId, reason: 'gone', status: 'failed' },
    at: T0,
  });

  it('records the end of an instance once', () => {
    expect(
      given(registered)
        .when(command('i-1'))
        .thenEmits([terminated('i-1')]),
    ).toEqual({
      kind: 'terminated',
      recorded: true,
    });
    expect(given(registered, terminated('i-1')).when(command('i-1')).thenEmits([])).toEqual({
      kind: 'terminated',
      recorded: false,
    });
  });

  it('records the end of the next instance of the same host', () => {
    given(registered, terminated('i-1'))
      .when(command('i-2'))
      .thenEmits([terminated('i-2')]);
  });

  it('rejects the end of a host that is not registered', () => {
    given().when(command('i-1')).thenRejects(NotFoundError);
  });
});

describe('hostDecider: Assign', () => {
  const command = (stateVersion: number): HostCommand => ({
    type: 'Assign',
    state: desired(stateVersion),
    by: { reason: 'rollout' },
    at: T0,
  });

  it('records the first assignment', () => {
    expect(
      given(registered)
        .when(command(1))
        .thenEmits([assigned(1)]),
    ).toEqual({ kind: 'assigned', recorded: true });
  });

  it('only moves forward: the same or an older state version records nothing', () => {
    const history = [registered, assigned(1), assigned(2)];
    given(...history)
      .when(command(2))
      .thenEmits([]);
    expect(
      given(...history)
        .when(command(1))
        .thenEmits([]),
    ).toEqual({ kind: 'assigned', recorded: false });
    given(...history)
      .when(command(3))
      .thenEmits([assigned(3)]);
  });

  it('rejects assigning a state to a host that is not registered', () => {
    given().when(command(1)).thenRejects(NotFoundError, 'host is not registered');
  });
});

describe('evolveHost', () => {
  it('keeps the secret the stream never holds, and derives lastSeen and metrics from the observations', () => {
    const first = observedEvent([registered], 1);
    const busy = machineState({
      operational: { load: 0.9, sessions: { voice: 60, sms: 0, mms: 0, video: 0 } },
    });
    const later = new Date(T0.getTime() + 30_000);
    const second = observedEvent([registered, first], 2, busy, later);
    const [r, o1, o2, a1, t1] = recorded([registered, first, second, assigned(1), terminated('i-1')]) as [
      RecordedEvent<HostEvent>,
      RecordedEvent<HostEvent>,
      RecordedEvent<HostEvent>,
      RecordedEvent<HostEvent>,
      RecordedEvent<HostEvent>,
    ];
    const projected: HostStreamState = { ...evolveHost(undefined, r), secretCiphertext: 'sealed' };

    const afterFirst = evolveHost(projected, o1);
    expect(afterFirst).toMatchObject({
      version: 2,
      status: 'running',
      role: 'call-router',
      lastSeq: 1,
      lastChangeSeq: 1,
      lastSeen: T0.toISOString(),
      metrics: { load: 0.2, sessions: { voice: 3, sms: 0, mms: 0, video: 0 } },
      secretCiphertext: 'sealed',
    });

    const afterSecond = evolveHost(afterFirst, o2);
    expect(afterSecond).toMatchObject({
      version: 3,
      lastSeq: 2,
      lastSeen: later.toISOString(),
      metrics: { load: 0.9, sessions: { voice: 60, sms: 0, mms: 0, video: 0 } },
      observed: { operational: { bands: { load: 2, sessions: { voice: 2 } } } },
      secretCiphertext: 'sealed',
    });

    // An assignment and an ended instance move neither lastSeen nor the metrics.
    const afterAssign = evolveHost(afterSecond, a1);
    expect(afterAssign).toMatchObject({
      version: 4,
      lastSeen: later.toISOString(),
      metrics: afterSecond.metrics,
      assigned: { version: 4, state: desired(1), by: { reason: 'rollout' } },
      secretCiphertext: 'sealed',
    });
    const afterEnd = evolveHost(afterAssign, t1);
    expect(afterEnd).toMatchObject({ version: 5, status: 'failed', lastSeq: 2, secretCiphertext: 'sealed' });
  });

  it('keeps a heartbeat-advanced lastSeq when a later event folds in', () => {
    const [r, a1] = recorded([registered, assigned(1)]) as [
      RecordedEvent<HostEvent>,
      RecordedEvent<HostEvent>,
    ];
    const touched = { ...evolveHost(undefined, r), lastSeq: 7 };
    expect(evolveHost(touched, a1).lastSeq).toBe(7);
  });
});

const lost: NewEvent<HostEvent> = {
  type: 'HostLost',
  eventId: 'cr-1.lost',
  data: { at: T0.toISOString(), lastSeen: T0.toISOString(), silentSeconds: 10_801, reason: 'silent' },
};

function degraded(dependency: string, version: number): NewEvent<HostEvent> {
  return {
    type: 'HostDegraded',
    eventId: `cr-1.degraded.${dependency}.${version}`,
    data: { at: T0.toISOString(), dependency, dependencyHosts: ['db-1'], reason: 'db has no healthy host' },
  };
}

describe('hostDecider: MarkLost', () => {
  const command: HostCommand = {
    type: 'MarkLost',
    loss: { lastSeen: T0.toISOString(), silentSeconds: 10_801, reason: 'silent' },
    at: T0,
  };

  it('records a silent host lost, and its status is lost from then on', () => {
    const first = observedEvent([registered], 1);
    const { state, outcome } = given(registered, first).when(command).thenEvents([lost]);
    expect(outcome).toEqual({ kind: 'lost', recorded: true });
    expect(state).toMatchObject({ status: 'lost', lost: lost.data });
  });

  it('records nothing for a host lost already, or one whose instance ended', () => {
    given(registered, lost).when(command).thenNothing({ kind: 'lost', recorded: false });
    given(registered, terminated('i-1')).when(command).thenNothing({ kind: 'lost', recorded: false });
  });

  it('rejects losing a host that is not registered', () => {
    given().when(command).thenRejects(NotFoundError);
  });

  it('keeps a lost host lost when it reports again (a zombie), recording the snapshot all the same', () => {
    const first = observedEvent([registered], 1);
    const later = new Date(T0.getTime() + 60_000);
    const { state } = given(registered, first, lost)
      .when(observe(2, machineState({ status: 'booting' }), later))
      .thenEvents([{ type: 'StateObserved', data: { seq: 2 } }]);
    expect(state).toMatchObject({ status: 'lost', lastSeq: 2, observed: { status: 'booting' } });
  });

  it('lets an ended instance outrank lost', () => {
    const first = observedEvent([registered], 1);
    expect(given(registered, first, lost, terminated('i-1')).state?.status).toBe('failed');
  });
});

describe('hostDecider: MarkDegraded and MarkRecovered', () => {
  const degrade = (dependency: string): HostCommand => ({
    type: 'MarkDegraded',
    degradation: { dependency, dependencyHosts: ['db-1'], reason: 'db has no healthy host' },
    at: T0,
  });
  const recover: HostCommand = { type: 'MarkRecovered', at: T0 };

  it('shows a running host degraded while a dependency has failed, and running once it recovered', () => {
    const first = observedEvent([registered], 1);
    const { state, outcome } = given(registered, first)
      .when(degrade('db'))
      .thenEvents([degraded('db', 3)]);
    expect(outcome).toEqual({ kind: 'degraded', recorded: true });
    expect(state).toMatchObject({
      status: 'degraded',
      degradedBy: { dependency: 'db', dependencyHosts: ['db-1'] },
    });

    const recovered = given(registered, first, degraded('db', 3))
      .when(recover)
      .thenEvents([
        {
          type: 'HostRecovered',
          eventId: 'cr-1.recovered.db.4',
          data: { dependency: 'db', at: T0.toISOString() },
        },
      ]);
    expect(recovered.outcome).toEqual({ kind: 'recovered', recorded: true });
    expect(recovered.state?.status).toBe('running');
    expect(recovered.state).not.toHaveProperty('degradedBy');
  });

  it('records nothing for the same dependency twice, and moves to another dependency', () => {
    const history = [registered, observedEvent([registered], 1), degraded('db', 3)];
    given(...history)
      .when(degrade('db'))
      .thenNothing({ kind: 'degraded', recorded: false });
    given(...history)
      .when(degrade('media'))
      .thenEvents([
        { type: 'HostDegraded', eventId: 'cr-1.degraded.media.4', data: { dependency: 'media' } },
      ]);
  });

  it('records nothing when a host that is not degraded recovers', () => {
    given(registered).when(recover).thenNothing({ kind: 'recovered', recorded: false });
  });

  it('records nothing for a lost host or one whose instance ended: their news is worse', () => {
    given(registered, lost).when(degrade('db')).thenNothing({ kind: 'degraded', recorded: false });
    given(registered, terminated('i-1'))
      .when(degrade('db'))
      .thenNothing({ kind: 'degraded', recorded: false });
  });

  it('shows only a running host degraded: a failure outranks it', () => {
    const first = observedEvent([registered], 1);
    const failing = observedEvent([registered, first], 2, machineState({ status: 'failed' }));
    expect(given(registered, first, degraded('db', 3)).state?.status).toBe('degraded');
    expect(given(registered, first, failing, degraded('db', 4)).state?.status).toBe('failed');
  });
});

describe('hostDecider: Retire', () => {
  const retire: HostCommand = { type: 'Retire', reason: 'secret revoked', at: T0 };
  const retired: NewEvent<HostEvent> = {
    type: 'HostRetired',
    eventId: 'cr-1.retired',
    data: { reason: 'secret revoked', at: T0.toISOString() },
  };

  it('records the end of a registration once', () => {
    expect(given(registered).when(retire).thenEmits([retired])).toEqual({ kind: 'retired', recorded: true });
    given(registered, retired).when(retire).thenNothing({ kind: 'retired', recorded: false });
  });

  it("answers a retired host's snapshot unknown-host, naming when it was retired", () => {
    expect(given(registered, retired).when(observe(1)).thenEmits([])).toEqual({
      kind: 'observed',
      verdict: { kind: 'unknown-host', retiredAt: T0.toISOString() },
    });
  });

  it('rejects registering a retired host again', () => {
    given(registered, retired).when({ type: 'Register', host: IDENTITY, at: T0 }).thenRejects(ConflictError);
  });

  it('drops the encrypted secret from the projection', () => {
    const [r, t] = recorded([registered, retired]) as [RecordedEvent<HostEvent>, RecordedEvent<HostEvent>];
    const projected: HostStreamState = { ...evolveHost(undefined, r), secretCiphertext: 'sealed' };
    expect(evolveHost(projected, t)).toMatchObject({ secretCiphertext: '', retired: retired.data });
  });
});

describe('restarts the control plane ordered', () => {
  const restart = (stateVersion: number, minute: number): NewEvent<HostEvent> => ({
    type: 'StateAssigned',
    eventId: `cr-1.assigned.${stateVersion}`,
    data: {
      state: desired(stateVersion),
      assignedAt: new Date(T0.getTime() + minute * 60_000).toISOString(),
      by: { reason: 'restart-service' },
    },
  });

  it('keeps when the last few restarts were assigned, and nothing for other assignments', () => {
    const events = [registered, assigned(1), ...[2, 3, 4, 5, 6, 7].map((v) => restart(v, v))];
    const state = fold(
      events.map((event, i) => ({
        ...event,
        stream: 'host#cr-1',
        version: i + 1,
        recordedAt: T0.toISOString(),
      })),
    );
    expect(state?.restartedAt).toEqual(
      [3, 4, 5, 6, 7].map((m) => new Date(T0.getTime() + m * 60_000).toISOString()),
    );
    const plain = fold(
      [registered, assigned(1)].map((e, i) => ({
        ...e,
        stream: 'host#cr-1',
        version: i + 1,
        recordedAt: T0.toISOString(),
      })),
    );
    expect(plain?.restartedAt).toBeUndefined();
  });
});
