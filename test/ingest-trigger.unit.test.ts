import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_INGEST_CONFIG } from '../functions/ingest/config.ts';
import { createIngestHandler, type IngestDeps } from '../functions/ingest/handler.ts';
import { TooLargeError } from '../shared/errors.ts';
import { hostStream } from '../shared/events.ts';
import type { DesiredHostState } from '../shared/groups/model.ts';
import type { ReconcileStarter } from '../shared/groups/ports.ts';
import { registerHost } from '../shared/host-registration.ts';
import { assignState, markLost, retireHost } from '../shared/hosts/host-commands.ts';
import { snapshotKey } from '../shared/keys.ts';
import type { Rejection, SnapshotStore, StoredObject } from '../shared/ports.ts';
import type { MachineState } from '../shared/schemas.ts';
import { newHostSecret, signSnapshot } from '../shared/signing.ts';
import { machineState } from './support/fixtures.ts';
import {
  FakeCipher,
  MemoryEventStore,
  MemoryHostStore,
  RecordingReconcileStarter,
} from './support/memory-stores.ts';

/*
 * The ingest starting a reconcile when a host reports itself or a service failed: the real handler over
 * in-memory stores, a bucket in a Map, and a starter that records what it was asked.
 */

const T0 = new Date('2026-11-25T10:00:00.000Z');
const SECRET = newHostSecret();

class MemorySnapshots implements SnapshotStore {
  readonly objects = new Map<string, string>();
  readonly quarantined: (Rejection & { key: string })[] = [];

  async read(key: string, maxBytes: number): Promise<StoredObject> {
    const body = this.objects.get(key);
    if (body === undefined) throw Object.assign(new Error(`no ${key}`), { name: 'NoSuchKey' });
    const size = Buffer.byteLength(body);
    if (size > maxBytes) throw new TooLargeError(`${key} is too large`, { size });
    return { body, size };
  }

  async quarantine(key: string, rejection: Rejection & { rejectedAt: string }): Promise<void> {
    this.objects.delete(key);
    this.quarantined.push({ key, reason: rejection.reason, detail: rejection.detail });
  }
}

let events: MemoryEventStore;
let hosts: MemoryHostStore;
let snapshots: MemorySnapshots;
let starter: RecordingReconcileStarter;
const cipher = new FakeCipher();
const now = () => T0;

function handler(overrides: Partial<IngestDeps> = {}) {
  return createIngestHandler({
    snapshots,
    hosts,
    events,
    cipher,
    config: DEFAULT_INGEST_CONFIG,
    now,
    starter,
    ...overrides,
  });
}

function desired(
  hostId: string,
  group: string,
  mode: DesiredHostState['mode'] = 'running',
): DesiredHostState {
  return {
    hostId,
    group,
    hostType: 'call-router',
    stateVersion: 1,
    services: { 'call-router': { version: '1.4.0' } },
    config: {},
    mode,
  };
}

async function host(hostId: string, group = 'demo', mode: DesiredHostState['mode'] = 'running') {
  const identity = { hostId, group, hostType: 'call-router', roles: ['call-router'] };
  await registerHost({ events, hosts, cipher }, identity, SECRET, T0);
  await assignState({ events, hosts, now }, desired(hostId, group, mode), { reason: 'test' });
}

function state(group: string, overrides: Parameters<typeof machineState>[0] = {}): MachineState {
  return machineState({ group, ...overrides });
}

const failedService = (group: string) =>
  state(group, { software: { 'call-router': { version: '1.4.0', status: 'failed' } } });

/** Puts the snapshot in the bucket and returns its notification. */
function upload(hostId: string, seq: number, reported: MachineState): SQSRecord {
  const key = snapshotKey(hostId, seq);
  const body = JSON.stringify(
    signSnapshot(SECRET, { hostId, seq, signedAt: T0.toISOString(), state: reported }),
  );
  snapshots.objects.set(key, body);
  const notification = {
    Records: [
      {
        eventTime: T0.toISOString(),
        eventName: 'ObjectCreated:Put',
        s3: { bucket: { name: 'snapshots' }, object: { key, size: Buffer.byteLength(body) } },
      },
    ],
  };
  return { messageId: key, receiptHandle: key, body: JSON.stringify(notification) } as SQSRecord;
}

const batch = (...records: SQSRecord[]): SQSEvent => ({ Records: records });

beforeEach(() => {
  events = new MemoryEventStore();
  hosts = new MemoryHostStore();
  snapshots = new MemorySnapshots();
  starter = new RecordingReconcileStarter();
});

describe('the ingest starting reconciles', () => {
  it('starts one reconcile per group per batch, however many of its hosts failed', async () => {
    await host('cr-1');
    await host('cr-2');
    await host('other-1', 'other');
    const ingest = handler();
    await ingest(batch(upload('cr-1', 1, state('demo')), upload('cr-2', 1, state('demo'))));

    const response = await ingest(
      batch(
        upload('cr-1', 2, state('demo', { status: 'failed' })),
        upload('cr-2', 5, failedService('demo')),
        upload('other-1', 1, state('other', { status: 'failed' })),
      ),
    );

    expect(response.batchItemFailures).toEqual([]);
    expect(starter.requests).toHaveLength(2);
    expect(starter.requests).toEqual(
      expect.arrayContaining([
        { group: 'demo', reason: 'host cr-2 reported failed (and 1 more)', dedupeKey: 'ingest-demo-cr-2-5' },
        { group: 'other', reason: 'host other-1 reported failed', dedupeKey: 'ingest-other-other-1-1' },
      ]),
    );
  });

  it('starts none for healthy snapshots, changed or not', async () => {
    await host('cr-1');
    const ingest = handler();
    await ingest(batch(upload('cr-1', 1, state('demo'))));
    await ingest(batch(upload('cr-1', 2, state('demo', { ips: { internal: '10.0.0.9' } }))));
    await ingest(batch(upload('cr-1', 3, state('demo', { ips: { internal: '10.0.0.9' } }))));

    expect(starter.requests).toEqual([]);
  });

  it('starts none twice for a batch delivered again', async () => {
    await host('cr-1');
    const ingest = handler();
    const records = [upload('cr-1', 1, state('demo', { status: 'failed' }))];
    await ingest(batch(...records));
    snapshots.objects.set(
      snapshotKey('cr-1', 1),
      JSON.stringify(
        signSnapshot(SECRET, {
          hostId: 'cr-1',
          seq: 1,
          signedAt: T0.toISOString(),
          state: state('demo', { status: 'failed' }),
        }),
      ),
    );

    await ingest(batch(...records));

    expect(starter.runs).toBe(1);
    expect(starter.requests).toHaveLength(1);
  });

  it('starts none for news that is no news: a host failed already, or a service stopped it is not told to run', async () => {
    await host('cr-1');
    await host('cr-2', 'demo', 'draining');
    const ingest = handler();
    await ingest(batch(upload('cr-1', 1, state('demo', { status: 'failed' }))));
    starter.requests.length = 0;

    await ingest(
      batch(
        upload('cr-1', 2, state('demo', { status: 'failed', ips: { internal: '10.0.0.9' } })),
        upload(
          'cr-2',
          1,
          state('demo', { software: { 'call-router': { version: '1.4.0', status: 'stopped' } } }),
        ),
      ),
    );

    expect(starter.requests).toEqual([]);
  });

  it('keeps the batch when the reconcile cannot be started: the monitor will find the host', async () => {
    await host('cr-1');
    const failing: ReconcileStarter = { start: () => Promise.reject(new Error('throttled')) };

    const response = await handler({ starter: failing })(
      batch(upload('cr-1', 1, state('demo', { status: 'failed' }))),
    );

    expect(response.batchItemFailures).toEqual([]);
    expect((await hosts.get('cr-1'))?.status).toBe('failed');
  });

  it('records a lost host reporting again, keeps it lost and starts nothing', async () => {
    await host('cr-1');
    await markLost({ events, hosts, now }, 'cr-1', { silentSeconds: 20_000, reason: 'silent' });

    await handler()(batch(upload('cr-1', 1, state('demo', { status: 'failed' }))));

    const stream = await events.read(hostStream('cr-1'));
    expect(stream.events.map((event) => event.type)).toContain('StateObserved');
    expect((await hosts.get('cr-1'))?.status).toBe('lost');
    expect(starter.requests).toEqual([]);
  });
});

describe('the ingest and a retired host', () => {
  it('refuses its snapshots as an unknown host, saying it was retired', async () => {
    await host('cr-1');
    await retireHost({ events, hosts, now }, 'cr-1', 'secret revoked');

    await handler()(batch(upload('cr-1', 1, state('demo'))));

    expect(snapshots.quarantined).toEqual([
      {
        key: snapshotKey('cr-1', 1),
        reason: 'unknown-host',
        detail: `host cr-1 was retired at ${T0.toISOString()}: its secret was revoked`,
      },
    ]);
  });
});
