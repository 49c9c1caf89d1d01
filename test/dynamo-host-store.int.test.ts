import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dynamoClient, type RunningDynalite, startDynalite } from '../shared/adapters/dynalite.ts';
import { DynamoHostStore, statusShardKey } from '../shared/adapters/dynamo-host-store.ts';
import { createTables, STATUS_SHARDS } from '../shared/adapters/table-schemas.ts';
import { ConflictError, ValidationError } from '../shared/errors.ts';
import type { HostFilter, HostRecord } from '../shared/ports.ts';
import type { HostStatus, ReportedHostStatus } from '../shared/schemas.ts';

let dynamo: RunningDynalite;
let raw: ReturnType<typeof dynamoClient>;
let store: DynamoHostStore;
/** On a table of its own, so listings see exactly the fleet the listing tests put there. */
let listStore: DynamoHostStore;
let hostCounter = 0;

beforeAll(async () => {
  dynamo = await startDynalite();
  raw = dynamoClient(dynamo.endpoint);
  store = new DynamoHostStore({ client: raw, tableName: dynamo.tables.hosts });
  await createTables(raw, { events: 'listing-events', hosts: 'listing-hosts' });
  listStore = new DynamoHostStore({ client: raw, tableName: 'listing-hosts' });
});

afterAll(async () => {
  raw?.destroy();
  await dynamo?.stop();
});

function freshId(prefix = 'h'): string {
  hostCounter += 1;
  return `${prefix}-${String(hostCounter).padStart(4, '0')}`;
}

interface HostShape {
  hostId?: string;
  group?: string;
  roles?: string[];
  status?: ReportedHostStatus;
  software?: Record<string, string>;
  version?: number;
  lastSeq?: number;
}

function host(shape: HostShape = {}): HostRecord {
  const hostId = shape.hostId ?? freshId();
  const group = shape.group ?? 'edge';
  const roles = shape.roles ?? ['router'];
  const status = shape.status ?? 'running';
  const software = Object.fromEntries(
    Object.entries(shape.software ?? { 'call-router': '1.0.0' }).map(([service, version]) => [
      service,
      { version, status: 'running' as const, port: 5060 },
    ]),
  );
  return {
    hostId,
    group,
    hostType: 'c7g-large',
    roles,
    registeredAt: '2025-01-01T00:00:00.000Z',
    version: shape.version ?? 2,
    lastChangeSeq: 4,
    observedAt: '2025-01-01T00:01:00.000Z',
    observed: {
      status,
      group,
      hostType: 'c7g-large',
      roles,
      ips: { internal: '10.0.0.7', external: undefined },
      capacity: { sessions: 500, cpus: 2 },
      config: { values: {} },
      software,
      operational: { dataRefs: [], bands: { load: 1, sessions: { voice: 2, sms: 0, mms: 0, video: 0 } } },
    },
    status,
    role: roles[0] ?? 'none',
    lastSeq: shape.lastSeq ?? 4,
    lastSeen: '2025-01-01T00:01:00.000Z',
    metrics: { load: 0.42, sessions: { voice: 12, sms: 0, mms: 0, video: 0 } },
    secretCiphertext: 'ciphertext',
  };
}

/** What a record looks like once stored: undefined members gone, nothing else changed. */
function stored(record: HostRecord): HostRecord {
  return JSON.parse(JSON.stringify(record)) as HostRecord;
}

/** The stored item, read past the adapter: it shows the index keys the record does not. */
async function rawItem(tableName: string, hostId: string) {
  const doc = DynamoDBDocumentClient.from(raw);
  return (await doc.send(new GetCommand({ TableName: tableName, Key: { hostId }, ConsistentRead: true })))
    .Item;
}

async function listAll(filter: HostFilter, limit: number, from: DynamoHostStore = listStore) {
  const pages: HostRecord[][] = [];
  let cursor: string | undefined;
  do {
    const page = await from.list(filter, limit, cursor);
    pages.push(page.hosts);
    cursor = page.next;
  } while (cursor && pages.length < 100);
  return pages;
}

describe('DynamoHostStore get, create, save, touch', () => {
  it('round-trips a record exactly, without undefined members', async () => {
    const record = host();
    await store.create(record);
    expect(await store.get(record.hostId)).toStrictEqual(stored(record));
    expect(await store.get('nobody')).toBeUndefined();
  });

  it('rejects creating a host whose id is taken', async () => {
    const record = host();
    await store.create(record);
    await expect(store.create({ ...record, group: 'other' })).rejects.toBeInstanceOf(ConflictError);
    expect((await store.get(record.hostId))?.group).toBe('edge');
  });

  it('saves a new record, a newer version and a higher lastSeq, and refuses older ones', async () => {
    const hostId = freshId();
    const at = (version: number, lastSeq: number, group: string) => host({ hostId, version, lastSeq, group });
    expect(await store.save(at(3, 10, 'first'))).toBe(true);
    expect(await store.save(at(2, 99, 'older-version'))).toBe(false);
    expect(await store.save(at(3, 9, 'lower-seq'))).toBe(false);
    expect(await store.save(at(3, 10, 'same-seq'))).toBe(false);
    expect((await store.get(hostId))?.group).toBe('first');
    expect(await store.save(at(3, 11, 'higher-seq'))).toBe(true);
    expect(await store.save(at(4, 1, 'newer-version'))).toBe(true);
    expect(await store.get(hostId)).toStrictEqual(stored(at(4, 1, 'newer-version')));
  });

  it('moves a heartbeat forward only at the same version and a higher lastSeq', async () => {
    const record = host({ version: 5, lastSeq: 7 });
    await store.create(record);
    const beat = {
      hostId: record.hostId,
      version: 5,
      lastSeq: 8,
      lastSeen: '2025-01-01T00:05:00.000Z',
      metrics: { load: 0.9, sessions: { voice: 40, sms: 1, mms: 0, video: 3 } },
    };
    expect(await store.touch({ ...beat, version: 4 })).toBe(false);
    expect(await store.touch({ ...beat, lastSeq: 7 })).toBe(false);
    expect(await store.touch({ ...beat, hostId: 'nobody' })).toBe(false);
    expect(await store.get('nobody')).toBeUndefined();
    expect(await store.get(record.hostId)).toStrictEqual(stored(record));

    expect(await store.touch(beat)).toBe(true);
    expect(await store.get(record.hostId)).toStrictEqual(
      stored({ ...record, lastSeq: 8, lastSeen: beat.lastSeen, metrics: beat.metrics }),
    );
    expect(await store.touch(beat)).toBe(false);
  });

  it('converges on the record with the highest (version, lastSeq) whatever order saves arrive in', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({ version: fc.integer({ min: 1, max: 4 }), lastSeq: fc.integer({ min: 0, max: 6 }) }),
          {
            minLength: 1,
            maxLength: 12,
          },
        ),
        async (writes) => {
          const hostId = freshId('prop');
          // Equal (version, lastSeq) pairs carry equal content, so any of them winning is the same outcome.
          const record = ({ version, lastSeq }: { version: number; lastSeq: number }) =>
            host({ hostId, version, lastSeq, group: `g-${version}-${lastSeq}` });
          await Promise.all(writes.map((write) => store.save(record(write))));
          const newest = writes.reduce((best, write) =>
            write.version > best.version || (write.version === best.version && write.lastSeq > best.lastSeq)
              ? write
              : best,
          );
          expect(await store.get(hostId)).toStrictEqual(stored(record(newest)));
        },
      ),
      { numRuns: 20 },
    );
  });
});

describe('DynamoHostStore list', () => {
  const STATUSES: ReportedHostStatus[] = ['running', 'draining', 'failed'];
  const fleet: HostRecord[] = [];

  beforeAll(async () => {
    for (let index = 0; index < 25; index += 1) {
      fleet.push(
        host({
          hostId: `list-${String(index).padStart(2, '0')}`,
          group: index < 15 ? 'blue' : 'green',
          roles: index % 2 === 0 ? ['media', 'router'] : ['router', 'media'],
          status: STATUSES[index % 3],
          software:
            index % 5 === 0
              ? { db: '16.2' }
              : { 'call-router': index % 4 === 0 ? '2.0.0' : '1.0.0', lb: '1.25' },
        }),
      );
    }
    await Promise.all(fleet.map((record) => listStore.create(record)));
  });

  const cases: [string, HostFilter, (record: HostRecord) => boolean][] = [
    ['group', { group: 'blue' }, (r) => r.group === 'blue'],
    ['primary role', { role: 'media' }, (r) => r.roles[0] === 'media'],
    ['status', { status: 'running' }, (r) => r.status === 'running'],
    ['service', { service: 'call-router' }, (r) => r.observed?.software['call-router'] !== undefined],
    [
      'service version',
      { service: 'call-router', version: '2.0.0' },
      (r) => r.observed?.software['call-router']?.version === '2.0.0',
    ],
    [
      'group, status and service',
      { group: 'blue', status: 'running', service: 'lb' },
      (r) => r.group === 'blue' && r.status === 'running' && r.observed?.software.lb !== undefined,
    ],
    [
      'role and status',
      { role: 'router', status: 'failed' },
      (r) => r.role === 'router' && r.status === 'failed',
    ],
  ];

  it.each(cases)('lists hosts by %s across pages of 4', async (_, filter, expected) => {
    const pages = await listAll(filter, 4);
    const listed = pages.flat();
    const wanted = fleet.filter(expected).map(stored);
    expect(wanted.length).toBeGreaterThan(0);
    const sortById = (records: HostRecord[]) => [...records].sort((a, b) => a.hostId.localeCompare(b.hostId));
    expect(sortById(listed)).toStrictEqual(sortById(wanted));
    for (const page of pages) expect(page.length).toBeGreaterThan(0);
    for (const page of pages.slice(0, -1)) expect(page).toHaveLength(4);
  });

  it('pages 25 hosts in pages of 10, 10 and 5', async () => {
    const pages = await listAll({}, 10);
    expect(pages.map((page) => page.length)).toEqual([10, 10, 5]);
    expect(new Set(pages.flat().map((record) => record.hostId)).size).toBe(25);
    const byGroup = await listAll({ group: 'blue' }, 10);
    expect(byGroup.map((page) => page.length)).toEqual([10, 5]);
    // The index keeps hosts in id order within a group.
    expect(byGroup.flat().map((record) => record.hostId)).toEqual(fleet.slice(0, 15).map((r) => r.hostId));
    const exact = await listAll({ group: 'green' }, 10);
    expect(exact.map((page) => page.length)).toEqual([10]);
  });

  it('returns an empty page for a filter nothing matches', async () => {
    expect(await listStore.list({ group: 'nowhere' }, 10)).toStrictEqual({ hosts: [] });
    expect(await listStore.list({ service: 'no-such-service' }, 10)).toStrictEqual({ hosts: [] });
  });

  it('rejects a bad cursor, a cursor from another listing, a version without service and a bad limit', async () => {
    const { next } = await listStore.list({ group: 'blue' }, 2);
    expect(next).toBeDefined();
    await expect(listStore.list({ group: 'blue' }, 2, 'garbage!')).rejects.toBeInstanceOf(ValidationError);
    await expect(
      listStore.list({ group: 'blue' }, 2, Buffer.from('{"x":1}').toString('base64url')),
    ).rejects.toBeInstanceOf(ValidationError);
    await expect(listStore.list({ group: 'green' }, 2, next)).rejects.toBeInstanceOf(ValidationError);
    await expect(listStore.list({ role: 'media' }, 2, next)).rejects.toBeInstanceOf(ValidationError);
    await expect(listStore.list({ version: '1.0.0' }, 2)).rejects.toBeInstanceOf(ValidationError);
    await expect(listStore.list({}, 0)).rejects.toBeInstanceOf(ValidationError);
    await expect(listStore.list({}, 101)).rejects.toBeInstanceOf(ValidationError);
  });
});

describe('DynamoHostStore status index shards', () => {
  /** A table of its own: 100 hosts, 70 of them running, spread over the shards by their ids. */
  let shardStore: DynamoHostStore;
  const fleet: HostRecord[] = [];
  const statusOf = (index: number): ReportedHostStatus =>
    index % 10 < 7 ? 'running' : index % 10 < 9 ? 'draining' : 'failed';

  beforeAll(async () => {
    await createTables(raw, { events: 'shard-events', hosts: 'shard-hosts' });
    shardStore = new DynamoHostStore({ client: raw, tableName: 'shard-hosts' });
    for (let index = 0; index < 100; index += 1) {
      fleet.push(
        host({
          hostId: `s-${String(index).padStart(3, '0')}`,
          group: index % 2 === 0 ? 'blue' : 'green',
          status: statusOf(index),
          software: index % 3 === 0 ? { lb: '1.25' } : { 'call-router': '1.0.0' },
        }),
      );
    }
    // Created in reverse so no listing order can come from the order of the writes.
    for (const record of [...fleet].reverse()) await shardStore.create(record);
  });

  it('spreads one status over many index partitions', async () => {
    const running = fleet.filter((record) => record.status === 'running');
    const shards = new Set<string>();
    for (const record of running) {
      const item = await rawItem('shard-hosts', record.hostId);
      expect(item?.statusShard).toBe(statusShardKey('running', record.hostId));
      expect(item?.statusShard).toMatch(/^running#([0-9]|[12][0-9]|3[01])$/);
      shards.add(item?.statusShard as string);
    }
    expect(STATUS_SHARDS).toBe(32);
    expect(shards.size).toBeGreaterThan(16);
  });

  it('lists 70 running hosts across every shard in id order, 7 a page', async () => {
    const pages = await listAll({ status: 'running' }, 7, shardStore);
    const wanted = fleet.filter((record) => record.status === 'running').map(stored);
    expect(wanted).toHaveLength(70);
    expect(pages.map((page) => page.length)).toEqual(Array(10).fill(7));
    expect(pages.flat()).toStrictEqual(wanted);
  });

  it('applies the rest of the filter and still fills every page but the last', async () => {
    for (const [filter, limit] of [
      [{ status: 'running', service: 'lb' }, 4],
      [{ status: 'draining' }, 3],
      [{ status: 'failed', service: 'call-router' }, 2],
      [{ status: 'running' }, 100],
      [{ status: 'running' }, 2],
    ] as [HostFilter, number][]) {
      const pages = await listAll(filter, limit, shardStore);
      const wanted = fleet
        .filter(
          (record) =>
            record.status === filter.status &&
            (filter.service === undefined || record.observed?.software[filter.service] !== undefined),
        )
        .map(stored);
      expect(wanted.length).toBeGreaterThan(0);
      expect(pages.flat()).toStrictEqual(wanted);
      for (const page of pages.slice(0, -1)) expect(page).toHaveLength(limit);
      expect(pages.at(-1)?.length).toBeGreaterThan(0);
    }
    expect(await shardStore.list({ status: 'stopped' }, 5)).toStrictEqual({ hosts: [] });
  });

  it('prefers the group index when a group is given, as before', async () => {
    const pages = await listAll({ group: 'blue', status: 'draining' }, 3, shardStore);
    expect(pages.flat()).toStrictEqual(
      fleet.filter((record) => record.group === 'blue' && record.status === 'draining').map(stored),
    );
  });

  it('resumes from a cursor after the last host it returned, and only for the same status', async () => {
    const first = await shardStore.list({ status: 'running' }, 7);
    expect(first.next).toBeDefined();
    const second = await shardStore.list({ status: 'running' }, 7, first.next);
    const running = fleet.filter((record) => record.status === 'running').map(stored);
    expect(second.hosts).toStrictEqual(running.slice(7, 14));
    await expect(shardStore.list({ status: 'draining' }, 7, first.next)).rejects.toBeInstanceOf(
      ValidationError,
    );
    await expect(shardStore.list({ group: 'blue' }, 7, first.next)).rejects.toBeInstanceOf(ValidationError);
  });

  it('moves a host to the shard of its new status when its status changes', async () => {
    const hostId = freshId('move');
    await shardStore.create(host({ hostId, status: 'running', version: 2, lastSeq: 1 }));
    expect((await rawItem('shard-hosts', hostId))?.statusShard).toBe(statusShardKey('running', hostId));

    expect(await shardStore.save(host({ hostId, status: 'draining', version: 3, lastSeq: 2 }))).toBe(true);
    const moved = await rawItem('shard-hosts', hostId);
    expect(moved?.statusShard).toBe(statusShardKey('draining', hostId));
    // The shard number comes from the id alone: only the status part of the key changes.
    expect(String(moved?.statusShard).split('#')[1]).toBe(statusShardKey('running', hostId).split('#')[1]);
    expect(await shardStore.get(hostId)).not.toHaveProperty('statusShard');

    const ids = async (status: HostStatus) =>
      (await listAll({ status }, 50, shardStore)).flat().map((record) => record.hostId);
    expect(await ids('draining')).toContain(hostId);
    expect(await ids('running')).not.toContain(hostId);

    // A refused (older) save leaves the key where the stored status says.
    expect(await shardStore.save(host({ hostId, status: 'failed', version: 2, lastSeq: 9 }))).toBe(false);
    expect((await rawItem('shard-hosts', hostId))?.statusShard).toBe(statusShardKey('draining', hostId));

    // A heartbeat does not touch the status, nor its key.
    expect(
      await shardStore.touch({
        hostId,
        version: 3,
        lastSeq: 3,
        lastSeen: '2025-01-01T00:09:00.000Z',
        metrics: { load: 0.1, sessions: { voice: 0, sms: 0, mms: 0, video: 0 } },
      }),
    ).toBe(true);
    expect((await rawItem('shard-hosts', hostId))?.statusShard).toBe(statusShardKey('draining', hostId));
  });
});
