import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIngestHandler } from '../functions/ingest/handler.ts';
import { buildIngestDeps } from '../functions/wiring.ts';
import type { LocalCloud } from '../infra/local/cloud.ts';
import { DynamoEventStore } from '../shared/adapters/dynamo-event-store.ts';
import { DynamoHostStore } from '../shared/adapters/dynamo-host-store.ts';
import { hostStream } from '../shared/events.ts';
import { quarantineKeys, snapshotKey } from '../shared/keys.ts';
import type { MachineState } from '../shared/schemas.ts';
import { newHostSecret, signSnapshot } from '../shared/signing.ts';
import { eventually, registerHost, testCloud } from './support/cloud.ts';
import { machineState } from './support/fixtures.ts';

let cloud: LocalCloud;
let secret: string;
let hosts: DynamoHostStore;
let events: DynamoEventStore;
let ingest: ReturnType<typeof createIngestHandler>;
const MAX_BYTES = 8 * 1024;

beforeAll(async () => {
  // Heartbeats are never coalesced here, so every accepted snapshot visibly moves lastSeq.
  const ingestConfig = { maxSnapshotBytes: MAX_BYTES, heartbeatCoalesceSeconds: 0 };
  cloud = await testCloud({ ingestConfig });
  secret = await registerHost(cloud, 'cr-1');
  await registerHost(cloud, 'cr-2');
  const { dynamodb } = cloud.clients;
  hosts = new DynamoHostStore({ client: dynamodb, tableName: cloud.endpoints.hostsTable });
  events = new DynamoEventStore({ client: dynamodb, tableName: cloud.endpoints.eventsTable });
  // The same handler the poller runs, invoked directly where a test must control delivery order.
  ingest = createIngestHandler(
    buildIngestDeps({
      dynamodb,
      s3: cloud.clients.s3Direct,
      bucket: cloud.endpoints.bucket,
      eventsTable: cloud.endpoints.eventsTable,
      hostsTable: cloud.endpoints.hostsTable,
      cipher: cloud.cipher,
      config: ingestConfig,
    }),
  );
});

afterAll(async () => {
  await cloud?.stop();
});

function body(hostId: string, seq: number, state: MachineState, signWith = secret): string {
  return JSON.stringify(signSnapshot(signWith, { hostId, seq, signedAt: new Date().toISOString(), state }));
}

/** Uploads without a notification, so the test decides when and in which order the ingest sees it. */
async function store(key: string, content: string): Promise<void> {
  await cloud.clients.s3Direct.send(
    new PutObjectCommand({ Bucket: cloud.endpoints.bucket, Key: key, Body: content }),
  );
}

function notification(key: string, size: number, messageId = key, eventTime = new Date()): SQSRecord {
  const body = {
    Records: [
      {
        eventVersion: '2.1',
        eventSource: 'aws:s3',
        awsRegion: 'us-east-1',
        eventTime: eventTime.toISOString(),
        eventName: 'ObjectCreated:Put',
        s3: {
          bucket: { name: cloud.endpoints.bucket, arn: `arn:aws:s3:::${cloud.endpoints.bucket}` },
          object: { key: encodeURIComponent(key).replaceAll('%2F', '/'), size },
        },
      },
    ],
  };
  return { messageId, receiptHandle: messageId, body: JSON.stringify(body) } as SQSRecord;
}

async function deliver(...records: SQSRecord[]) {
  return ingest({ Records: records } satisfies SQSEvent);
}

async function reasonFor(key: string): Promise<{ reason: string; detail: string } | undefined> {
  try {
    const response = await cloud.clients.s3Direct.send(
      new GetObjectCommand({ Bucket: cloud.endpoints.bucket, Key: quarantineKeys(key).reason }),
    );
    return JSON.parse(await (response.Body?.transformToString() ?? ''));
  } catch {
    return undefined;
  }
}

const runningOn = (version: string) => machineState({ software: { 'call-router': { version } } });

async function exists(key: string): Promise<boolean> {
  try {
    await cloud.clients.s3Direct.send(new GetObjectCommand({ Bucket: cloud.endpoints.bucket, Key: key }));
    return true;
  } catch {
    return false;
  }
}

describe('ingest on the embedded cloud', () => {
  it('a snapshot put through S3 appears in the history and the projection', async () => {
    await cloud.clients.s3.send(
      new PutObjectCommand({
        Bucket: cloud.endpoints.bucket,
        Key: snapshotKey('cr-1', 1),
        Body: body('cr-1', 1, runningOn('1.0.0')),
      }),
    );
    const host = await eventually(async () => {
      const record = await hosts.get('cr-1');
      return record && record.lastSeq >= 1 ? record : undefined;
    });
    expect(host).toMatchObject({ version: 2, status: 'running', lastSeq: 1, metrics: { load: 0.2 } });
    expect(host.observed?.software['call-router']?.version).toBe('1.0.0');
    const history = await events.read(hostStream('cr-1'));
    expect(history.events.map((e) => e.type)).toEqual(['HostRegistered', 'StateObserved']);
    expect(history.events[1]?.eventId).toBe(snapshotKey('cr-1', 1));
  });

  it('an unchanged snapshot writes nothing to the event log', async () => {
    await cloud.clients.s3.send(
      new PutObjectCommand({
        Bucket: cloud.endpoints.bucket,
        Key: snapshotKey('cr-1', 2),
        Body: body('cr-1', 2, runningOn('1.0.0')),
      }),
    );
    await eventually(async () => ((await hosts.get('cr-1'))?.lastSeq === 2 ? true : undefined));
    expect(await events.currentVersion(hostStream('cr-1'))).toBe(2);
  });

  it('a duplicate delivery adds nothing and is not quarantined', async () => {
    const key = snapshotKey('cr-1', 3);
    const content = body('cr-1', 3, runningOn('1.1.0'));
    await store(key, content);
    const size = Buffer.byteLength(content);
    expect(await deliver(notification(key, size, 'first'))).toEqual({ batchItemFailures: [] });
    expect(await deliver(notification(key, size, 'again'))).toEqual({ batchItemFailures: [] });
    expect(await events.currentVersion(hostStream('cr-1'))).toBe(3);
    expect(await reasonFor(key)).toBeUndefined();
  });

  it('out-of-order delivery leaves the newest state', async () => {
    const newer = snapshotKey('cr-1', 5);
    const older = snapshotKey('cr-1', 4);
    const newerBody = body('cr-1', 5, runningOn('1.3.0'));
    const olderBody = body('cr-1', 4, runningOn('1.2.0'));
    await store(newer, newerBody);
    await store(older, olderBody);
    await deliver(notification(newer, Buffer.byteLength(newerBody)));
    await deliver(notification(older, Buffer.byteLength(olderBody)));
    const host = await hosts.get('cr-1');
    expect(host?.lastSeq).toBe(5);
    expect(host?.observed?.software['call-router']?.version).toBe('1.3.0');
    expect(await reasonFor(older)).toMatchObject({ reason: 'replayed' });
  });

  it('leaves an older accepted snapshot in place when it is put or delivered again after newer ones', async () => {
    const hostSecret = await registerHost(cloud, 'cr-3');
    const snapshots = new Map<number, string>();
    const accept = async (seq: number, state: MachineState) => {
      const key = snapshotKey('cr-3', seq);
      const content = body('cr-3', seq, state, hostSecret);
      snapshots.set(seq, content);
      await store(key, content);
      expect(await deliver(notification(key, Buffer.byteLength(content)))).toEqual({ batchItemFailures: [] });
    };
    await accept(3, runningOn('3.0.0'));
    await accept(4, runningOn('4.0.0'));
    await accept(5, runningOn('5.0.0'));
    // Accepted as a heartbeat (the same state as 5), then superseded by a change.
    await accept(6, runningOn('5.0.0'));
    await accept(7, runningOn('7.0.0'));
    const stream = hostStream('cr-3');
    const versionBefore = await events.currentVersion(stream);
    expect(versionBefore).toBe(5);
    expect((await hosts.get('cr-3'))?.lastSeq).toBe(7);

    for (const seq of [3, 6]) {
      const key = snapshotKey('cr-3', seq);
      const content = snapshots.get(seq) as string;
      const size = Buffer.byteLength(content);
      // A duplicate notification of the original upload, and the byte-identical object put again an hour
      // later (S3 stamps the new put with its own time, far from the signature's).
      expect(await deliver(notification(key, size, `again-${seq}`))).toEqual({ batchItemFailures: [] });
      await store(key, content);
      const later = new Date(Date.now() + 3_600_000);
      expect(await deliver(notification(key, size, `re-put-${seq}`, later))).toEqual({
        batchItemFailures: [],
      });

      expect(await exists(key), key).toBe(true);
      expect(await exists(quarantineKeys(key).object), key).toBe(false);
      expect(await reasonFor(key), key).toBeUndefined();
    }
    expect(await events.currentVersion(stream)).toBe(versionBefore);
    const host = await hosts.get('cr-3');
    expect(host?.lastSeq).toBe(7);
    expect(host?.observed?.software['call-router']?.version).toBe('7.0.0');
  });

  it('quarantines bad records with reasons while the good ones in the same batch land', async () => {
    const good = { key: snapshotKey('cr-1', 10), content: body('cr-1', 10, runningOn('2.0.0')) };
    const bad = {
      'bad-signature': {
        key: snapshotKey('cr-1', 11),
        content: body('cr-1', 11, runningOn('6.6.6'), newHostSecret()),
      },
      replayed: { key: snapshotKey('cr-1', 1), content: body('cr-1', 1, runningOn('0.0.1')) },
      malformed: { key: snapshotKey('cr-1', 12), content: '{"hostId": "cr-1", "seq": 12' },
      oversized: {
        key: snapshotKey('cr-1', 13),
        content: body(
          'cr-1',
          13,
          machineState({
            config: { values: { a: 'x'.repeat(4000), b: 'y'.repeat(4000), c: 'z'.repeat(4000) } },
          }),
        ),
      },
      foreign: { key: snapshotKey('cr-2', 1), content: body('cr-1', 1, runningOn('6.6.6')) },
      'unknown-host': { key: snapshotKey('nobody', 1), content: body('nobody', 1, runningOn('1.0.0')) },
      'bad-key': { key: 'snapshots/cr-1/latest.json', content: body('cr-1', 14, runningOn('6.6.6')) },
    };
    const all = [good, ...Object.values(bad)];
    for (const { key, content } of all) await store(key, content);
    const response = await deliver(
      ...all.map(({ key, content }) => notification(key, Buffer.byteLength(content))),
    );
    expect(response).toEqual({ batchItemFailures: [] });

    const host = await hosts.get('cr-1');
    expect(host?.lastSeq).toBe(10);
    expect(host?.observed?.software['call-router']?.version).toBe('2.0.0');
    for (const [reason, { key }] of Object.entries(bad)) {
      expect(await reasonFor(key), key).toMatchObject({ reason, detail: expect.any(String) });
    }
  });

  it('fails a message that is not an S3 notification as a batch item, so SQS redelivers it', async () => {
    const garbage = { messageId: 'garbage', receiptHandle: 'x', body: 'not json' } as SQSRecord;
    const good = notification(snapshotKey('cr-1', 10), 100, 'redelivered-good');
    expect(await deliver(garbage, good)).toEqual({ batchItemFailures: [{ itemIdentifier: 'garbage' }] });
  });

  it('acknowledges the s3:TestEvent that S3 sends when notifications are set up', async () => {
    const test = {
      messageId: 't',
      receiptHandle: 't',
      body: JSON.stringify({ Event: 's3:TestEvent' }),
    } as SQSRecord;
    expect(await deliver(test)).toEqual({ batchItemFailures: [] });
  });
});
