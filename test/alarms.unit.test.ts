import { PublishCommand, type PublishCommandInput, SNSClient } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { alarmLine, alarmOfMessage } from '../infra/local/alarm-printer.ts';
import {
  alarmMessage,
  alarmSubject,
  MAX_SUBJECT_LENGTH,
  SnsAlarmPublisher,
} from '../shared/adapters/sns-alarm-publisher.ts';
import {
  type AlarmDocument,
  alarmDocumentId,
  alarmDocumentsOf,
  listAlarms,
} from '../shared/alarms/alarm-documents.ts';
import {
  dependencyChain,
  diagnose,
  diagnosisOf,
  type HostEvidence,
  MAX_DIAGNOSED_HOSTS,
} from '../shared/alarms/diagnosis.ts';
import type { HostEvent } from '../shared/events.ts';
import { hostStream, type NewEvent, type RecordedEvent, type StateObserved } from '../shared/events.ts';
import { parseGroupDefinition } from '../shared/groups/compile.ts';
import type { GroupEvent } from '../shared/groups/events.ts';
import { clearAlarm, raiseAlarm } from '../shared/groups/group-service.ts';
import { loadGroupState } from '../shared/groups/group-stream.ts';
import type { CompiledGroup } from '../shared/groups/model.ts';
import type { PublishedAlarm } from '../shared/groups/ports.ts';
import type { TrackedState } from '../shared/metrics.ts';
import { registeredHost } from './support/fixtures.ts';
import { DEMO_YAML } from './support/groups-harness.ts';
import { MemoryDocumentStore, MemoryEventStore, MemoryHostStore } from './support/memory-stores.ts';
import { runningGroup } from './support/reconcile-fixtures.ts';

const DEMO = parseGroupDefinition(DEMO_YAML, 'yaml');
const AT = new Date('2031-02-03T04:05:06.000Z');

function stores() {
  let now = AT;
  const published: PublishedAlarm[] = [];
  const deps = {
    events: new MemoryEventStore(),
    documents: new MemoryDocumentStore(),
    hosts: new MemoryHostStore(),
    now: () => now,
    alarms: { publish: async (alarm: PublishedAlarm) => void published.push(structuredClone(alarm)) },
  };
  return { deps, published, tick: (ms: number) => (now = new Date(now.getTime() + ms)) };
}

async function compiledDemo(): Promise<CompiledGroup> {
  const { deps } = stores();
  await runningGroup(deps, DEMO);
  const state = await loadGroupState(deps, 'demo');
  if (!state.compiled) throw new Error('demo compiles');
  return state.compiled;
}

const crash = {
  alarmId: 'replacements#media#demo-media-3',
  alarm: 'repeated-host-failures',
  detail: '3 media hosts died',
  hostIds: ['demo-media-1', 'demo-media-2', 'demo-media-3'],
};

function observed(seq: number, changes: StateObserved['data']['changes']): NewEvent<HostEvent> {
  return {
    type: 'StateObserved',
    eventId: `snap-${seq}`,
    data: { seq, observedAt: new Date(AT.getTime() + seq * 1000).toISOString(), changes },
  };
}

/** A media host that reported four snapshots, the last one its service failed, and was told state 7. */
async function failedMediaHost(deps: ReturnType<typeof stores>['deps'], hostId: string) {
  await deps.events.append<HostEvent>(
    hostStream(hostId),
    0,
    [
      {
        type: 'HostRegistered',
        eventId: `reg-${hostId}`,
        data: { hostId, group: 'demo', hostType: 'media', roles: ['media'], registeredAt: AT.toISOString() },
      },
      observed(1, [{ op: 'added', path: '/status', new: 'booting' }]),
      observed(2, [{ op: 'changed', path: '/status', old: 'booting', new: 'running' }]),
      observed(3, [{ op: 'added', path: '/software/media', new: { version: '2.0', status: 'running' } }]),
      observed(4, [{ op: 'changed', path: '/software/media/status', old: 'running', new: 'failed' }]),
    ],
    AT,
  );
  await deps.hosts.create(
    registeredHost({
      hostId,
      hostType: 'media',
      roles: ['media'],
      role: 'media',
      status: 'running',
      lastSeen: '2031-02-03T04:05:10.000Z',
      observed: { software: { media: { version: '2.0', status: 'failed' } } } as unknown as TrackedState,
      assigned: {
        state: {
          hostId,
          group: 'demo',
          hostType: 'media',
          stateVersion: 7,
          services: {},
          config: {},
          mode: 'running',
        },
        assignedAt: AT.toISOString(),
        by: { run: 'plan-1', reason: 'rollout' },
        version: 6,
      },
    }),
  );
}

describe('raiseAlarm: delivery and the alarm listing', () => {
  let errors: ReturnType<typeof vi.spyOn>;
  beforeEach(() => {
    errors = vi.spyOn(console, 'error').mockImplementation(() => {});
  });
  afterEach(() => errors.mockRestore());

  it('publishes an alarm raised twice once, and lists it once', async () => {
    const { deps, published } = stores();
    await runningGroup(deps, DEMO);
    expect(await raiseAlarm(deps, 'demo', crash)).toEqual({ raised: true });
    expect(await raiseAlarm(deps, 'demo', crash)).toEqual({ raised: false });
    expect(published).toEqual([
      { group: 'demo', at: AT.toISOString(), ...crash, diagnosis: expect.any(Object) },
    ]);
    const listed = await listAlarms(deps.documents, { limit: 10 });
    expect(listed.alarms).toEqual([
      { group: 'demo', at: AT.toISOString(), ...crash, diagnosis: expect.any(Object) },
    ]);
  });

  it('publishes one alarm per episode, and again once the episode cleared, marking the first cleared', async () => {
    const { deps, published, tick } = stores();
    await runningGroup(deps, DEMO);
    const ofTick = (n: number) => ({ ...crash, alarmId: `rule[1]#media#${n}`, episode: 'rule[1]#media' });
    await raiseAlarm(deps, 'demo', ofTick(1));
    tick(60_000);
    expect(await raiseAlarm(deps, 'demo', ofTick(2))).toEqual({ raised: false });
    tick(60_000);
    expect(await clearAlarm(deps, 'demo', 'rule[1]#media')).toEqual({ cleared: true });
    expect(await clearAlarm(deps, 'demo', 'rule[1]#media')).toEqual({ cleared: false });
    tick(60_000);
    expect(await raiseAlarm(deps, 'demo', ofTick(4))).toEqual({ raised: true });
    expect(published.map((alarm) => alarm.alarmId)).toEqual(['rule[1]#media#1', 'rule[1]#media#4']);
    const { alarms } = await listAlarms(deps.documents, { limit: 10 });
    expect(alarms.map((alarm) => [alarm.alarmId, alarm.clearedAt])).toEqual([
      ['rule[1]#media#4', undefined],
      ['rule[1]#media#1', '2031-02-03T04:07:06.000Z'],
    ]);
  });

  it('raises the alarm in the stream when publishing fails, logging the alarm id without throwing', async () => {
    const { deps } = stores();
    await runningGroup(deps, DEMO);
    const failing = { ...deps, alarms: { publish: async () => Promise.reject(new Error('SNS is down')) } };
    expect(await raiseAlarm(failing, 'demo', crash)).toEqual({ raised: true });
    expect(String(errors.mock.calls[0]?.[0])).toContain(crash.alarmId);
    const state = await loadGroupState(deps, 'demo');
    expect(state.recentAlarmIds).toEqual([crash.alarmId]);
  });

  it('raises with the diagnosis of the hosts it names when the hosts store is at hand', async () => {
    const { deps, published } = stores();
    await runningGroup(deps, DEMO);
    await failedMediaHost(deps, 'demo-media-1');
    await raiseAlarm(deps, 'demo', { ...crash, hostIds: ['demo-media-1'] });
    const diagnosis = published[0]?.diagnosis;
    expect(diagnosis?.service).toBe('media');
    expect(diagnosis?.dependencyChain).toEqual(['media', 'call-router', 'db']);
    expect(diagnosis?.hosts[0]?.lastSnapshots.map((snapshot) => snapshot.seq)).toEqual([4, 3, 2]);
    // The event holds it too: the listing can be rebuilt with it.
    const [raised] = (await deps.events.read<GroupEvent>('group#demo')).events.filter(
      (event) => event.type === 'AlarmRaised',
    );
    expect(raised?.type === 'AlarmRaised' && raised.data.diagnosis).toEqual(diagnosis);
  });

  it('works without a publisher or a hosts store: the stream and the listing only', async () => {
    const { deps } = stores();
    await runningGroup(deps, DEMO);
    const bare = { events: deps.events, documents: deps.documents, now: deps.now };
    expect(await raiseAlarm(bare, 'demo', crash)).toEqual({ raised: true });
    expect((await listAlarms(deps.documents, { limit: 10 })).alarms).toEqual([
      { group: 'demo', at: AT.toISOString(), ...crash },
    ]);
  });
});

describe('diagnosis', () => {
  it('chains a service to what depends on it, transitively, then to what it depends on', async () => {
    const compiled = await compiledDemo();
    expect(dependencyChain(compiled, 'media')).toEqual(['media', 'call-router', 'db']);
    expect(dependencyChain(compiled, 'db')).toEqual(['db', 'call-router', 'media']);
    expect(dependencyChain(compiled, 'lb')).toEqual(['lb']);
  });

  it('diagnoses at most five hosts and says how many it left out; names the first failed service', async () => {
    const compiled = await compiledDemo();
    const evidence: HostEvidence[] = Array.from({ length: 7 }, (_, index) => ({
      hostId: `h-${index}`,
      record: registeredHost({
        hostId: `h-${index}`,
        hostType: 'media',
        status: 'failed',
        observed: { software: { media: { version: '2.0', status: 'failed' } } } as unknown as TrackedState,
      }),
      snapshots: [],
    }));
    const diagnosis = diagnosisOf(compiled, evidence);
    expect(diagnosis.hosts).toHaveLength(MAX_DIAGNOSED_HOSTS);
    expect(diagnosis.omittedHosts).toBe(2);
    expect(diagnosis.service).toBe('media');
    expect(diagnosis.hosts[0]).toEqual({
      hostId: 'h-0',
      hostType: 'media',
      status: 'failed',
      services: { media: { status: 'failed', version: '2.0' } },
      lastSnapshots: [],
    });
  });

  it('keeps three snapshots, cuts a snapshot of many changes, and diagnoses an unknown host as unknown', async () => {
    const compiled = await compiledDemo();
    const many = Array.from({ length: 25 }, (_, index) => ({
      op: 'added' as const,
      path: `/c/${index}`,
      new: 1,
    }));
    const snapshots = [5, 4, 3, 2].map(
      (seq) =>
        ({
          ...observed(seq, many),
          stream: 'host#x',
          version: seq,
          recordedAt: '',
        }) as RecordedEvent<StateObserved>,
    );
    const diagnosis = diagnosisOf(
      compiled,
      [
        { hostId: 'x', snapshots },
        { hostId: 'gone', snapshots: [] },
      ],
      'db',
    );
    expect(diagnosis.service).toBe('db');
    expect(diagnosis.hosts[0]?.lastSnapshots.map((snapshot) => snapshot.seq)).toEqual([5, 4, 3]);
    expect(diagnosis.hosts[0]?.lastSnapshots[0]?.changes).toHaveLength(20);
    expect(diagnosis.hosts[0]?.lastSnapshots[0]?.omittedChanges).toBe(5);
    expect(diagnosis.hosts[1]).toMatchObject({ hostId: 'gone', status: 'unknown', hostType: 'unknown' });
  });

  it('reads the record and the last three snapshots of each host, newest first, and what it was told', async () => {
    const { deps } = stores();
    const compiled = await compiledDemo();
    await failedMediaHost(deps, 'm-1');
    const diagnosis = await diagnose(deps, compiled, ['m-1', 'm-1', 'nobody']);
    expect(diagnosis.hosts).toHaveLength(2);
    expect(diagnosis.hosts[0]).toMatchObject({
      hostId: 'm-1',
      hostType: 'media',
      status: 'running',
      lastSeen: '2031-02-03T04:05:10.000Z',
      services: { media: { status: 'failed', version: '2.0' } },
      assigned: { stateVersion: 7, by: { run: 'plan-1', reason: 'rollout' } },
    });
    expect(diagnosis.hosts[0]?.lastSnapshots.map((snapshot) => snapshot.seq)).toEqual([4, 3, 2]);
    expect(diagnosis.hosts[1]).toMatchObject({ hostId: 'nobody', status: 'unknown', lastSnapshots: [] });
  });
});

describe('the alarm listing', () => {
  const alarm = (at: string, group: string, alarmId: string): AlarmDocument => ({
    group,
    alarmId,
    alarm: 'a',
    detail: 'd',
    at,
  });

  async function listing(alarms: AlarmDocument[]) {
    const documents = new MemoryDocumentStore();
    for (const one of alarms) await documents.put('alarm', alarmDocumentId(one), one, 0, AT);
    return documents;
  }

  const all = [
    alarm('2031-01-01T00:00:00.000Z', 'a', '1'),
    alarm('2031-01-02T00:00:00.000Z', 'b', '2'),
    alarm('2031-01-03T00:00:00.000Z', 'a', '3'),
    alarm('2031-01-04T00:00:00.000Z', 'b', '4'),
    alarm('2031-01-05T00:00:00.000Z', 'a', '5'),
  ];

  it('lists newest first, page by page', async () => {
    const documents = await listing(all);
    const first = await listAlarms(documents, { limit: 2 });
    expect(first.alarms.map((one) => one.alarmId)).toEqual(['5', '4']);
    const second = await listAlarms(documents, { limit: 2, next: first.next });
    expect(second.alarms.map((one) => one.alarmId)).toEqual(['3', '2']);
    const third = await listAlarms(documents, { limit: 2, next: second.next });
    expect(third).toEqual({ alarms: [all[0]] });
  });

  it('filters by group across pages and stops at the first alarm older than since', async () => {
    const documents = await listing(all);
    const ofA = await listAlarms(documents, { limit: 2, group: 'a' });
    expect(ofA.alarms.map((one) => one.alarmId)).toEqual(['5', '3']);
    expect((await listAlarms(documents, { limit: 2, group: 'a', next: ofA.next })).alarms).toEqual([all[0]]);
    const recent = await listAlarms(documents, { limit: 10, since: '2031-01-03T00:00:00.000Z' });
    expect(recent).toEqual({ alarms: [all[4], all[3], all[2]] });
  });

  it('is rebuilt from the group stream: raised alarms, cleared where their episode cleared', () => {
    const recorded = (version: number, event: NewEvent<GroupEvent>) =>
      ({ ...event, stream: 'group#demo', version, recordedAt: '' }) as RecordedEvent<GroupEvent>;
    const rebuilt = alarmDocumentsOf('demo', [
      recorded(1, {
        type: 'AlarmRaised',
        eventId: 'x',
        data: { alarm: 'down', detail: 'd', at: '2031-01-01T00:00:00.000Z', episode: 'e' },
      }),
      recorded(2, {
        type: 'AlarmCleared',
        eventId: 'x#cleared',
        data: { episode: 'e', alarmId: 'x', at: '2031-01-02T00:00:00.000Z' },
      }),
      recorded(3, {
        type: 'AlarmRaised',
        eventId: 'y',
        data: { alarm: 'down', detail: 'd', at: '2031-01-03T00:00:00.000Z' },
      }),
    ]);
    expect(rebuilt).toEqual([
      {
        group: 'demo',
        alarmId: 'x',
        alarm: 'down',
        detail: 'd',
        at: '2031-01-01T00:00:00.000Z',
        episode: 'e',
        clearedAt: '2031-01-02T00:00:00.000Z',
      },
      { group: 'demo', alarmId: 'y', alarm: 'down', detail: 'd', at: '2031-01-03T00:00:00.000Z' },
    ]);
  });
});

describe('SnsAlarmPublisher', () => {
  const sns = mockClient(SNSClient);
  afterEach(() => sns.reset());
  const topicArn = 'arn:aws:sns:eu-west-1:123456789012:fleetfold-alarms';
  const published: PublishedAlarm = {
    group: 'demo',
    at: AT.toISOString(),
    ...crash,
    diagnosis: {
      hosts: [
        {
          hostId: 'demo-media-1',
          hostType: 'media',
          status: 'failed',
          services: { media: { status: 'failed', version: '2.0' } },
          lastSnapshots: [],
          assigned: { stateVersion: 7, by: { run: 'plan-1' } },
        },
      ],
      dependencyChain: ['media', 'call-router', 'db'],
      service: 'media',
    },
  };

  it('publishes a subject, a readable text followed by the JSON, and attributes to filter on', async () => {
    sns.on(PublishCommand).resolves({ MessageId: 'm-1' });
    const publisher = new SnsAlarmPublisher({ sns: new SNSClient({ region: 'eu-west-1' }), topicArn });
    await publisher.publish(published);
    const calls = sns.commandCalls(PublishCommand);
    expect(calls).toHaveLength(1);
    const input = calls[0]?.args[0].input as PublishCommandInput;
    expect(input).toMatchObject({
      TopicArn: topicArn,
      Subject: '[fleetfold] demo: repeated-host-failures',
      MessageAttributes: {
        group: { DataType: 'String', StringValue: 'demo' },
        alarm: { DataType: 'String', StringValue: 'repeated-host-failures' },
      },
    });
    const message = input.Message ?? '';
    expect(message).toMatch(
      /^repeated-host-failures in group demo at 2031-02-03T04:05:06.000Z\n\n3 media hosts died\n/,
    );
    expect(message).toContain('  demo-media-1 (media): failed, told state 7; media 2.0 failed');
    expect(message).toContain('Dependency chain: media → call-router → db');
    expect(alarmOfMessage(message)).toEqual(published);
  });

  it('cuts a long subject to 100 characters and keeps line breaks out of it', () => {
    const subject = alarmSubject({ group: 'g'.repeat(64), alarm: `line\nbreak ${'x'.repeat(80)}` });
    expect(subject).toHaveLength(MAX_SUBJECT_LENGTH);
    expect(subject).not.toContain('\n');
    expect(subject.endsWith('…')).toBe(true);
  });

  it('leaves the JSON out of a message too large for SNS', () => {
    const huge = { ...published, detail: 'x'.repeat(300 * 1024) };
    const message = alarmMessage(huge);
    expect(message).toContain('GET /alarms has it');
    expect(alarmOfMessage(message)).toBeUndefined();
  });

  it('prints one readable line per alarm locally', () => {
    expect(alarmLine(published)).toBe(
      'ALARM demo: repeated-host-failures — 3 media hosts died (hosts demo-media-1)',
    );
    expect(alarmLine({ ...published, diagnosis: undefined })).toBe(
      'ALARM demo: repeated-host-failures — 3 media hosts died (hosts demo-media-1, demo-media-2, demo-media-3)',
    );
  });
});
