import type { ConsumedCapacity } from '@aws-sdk/client-dynamodb';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  type BatchGetCommandInput,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  type QueryCommandInput,
} from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it } from 'vitest';
import { DynamoHostStore, statusShardKey } from '../shared/adapters/dynamo-host-store.ts';
import { STATUS_SHARDS } from '../shared/adapters/table-schemas.ts';
import type { HostRecord } from '../shared/ports.ts';

const TABLE = 'hosts';

function record(hostId: string) {
  return {
    hostId,
    group: 'blue',
    hostType: 't',
    roles: ['router'],
    registeredAt: '2025-01-01T00:00:00.000Z',
    version: 1,
    lastChangeSeq: 0,
    status: 'running',
    role: 'router',
    lastSeq: 0,
    secretCiphertext: 'c',
  };
}

describe('DynamoHostStore list on a throttled table', () => {
  it('asks again for unprocessed keys and keeps the index order', async () => {
    const doc = DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'us-east-1' }));
    const mock = mockClient(doc);
    mock.on(QueryCommand).resolves({
      Items: ['a', 'b', 'c'].map((hostId) => ({ group: 'blue', hostId })),
      ConsumedCapacity: { TableName: TABLE, CapacityUnits: 0.5 },
    });
    mock
      .on(BatchGetCommand)
      .resolvesOnce({
        Responses: { [TABLE]: [record('c')] },
        UnprocessedKeys: { [TABLE]: { Keys: [{ hostId: 'a' }, { hostId: 'b' }] } },
        ConsumedCapacity: [{ TableName: TABLE, CapacityUnits: 1 }],
      })
      .resolvesOnce({
        Responses: { [TABLE]: [record('b'), record('a')] },
        ConsumedCapacity: [{ TableName: TABLE, CapacityUnits: 2 }],
      });
    const reports: [string, ConsumedCapacity | undefined][] = [];
    const store = new DynamoHostStore({
      client: doc,
      tableName: TABLE,
      onCapacity: (operation, consumed) => reports.push([operation, consumed]),
    });

    const page = await store.list({ group: 'blue' }, 10);

    expect(page.hosts.map((host) => host.hostId)).toEqual(['a', 'b', 'c']);
    expect(page.next).toBeUndefined();
    const batchGets = mock.commandCalls(BatchGetCommand);
    expect(batchGets).toHaveLength(2);
    expect(batchGets[1]?.args[0].input.RequestItems?.[TABLE]?.Keys).toEqual([
      { hostId: 'a' },
      { hostId: 'b' },
    ]);
    expect(reports.map(([operation, consumed]) => [operation, consumed?.CapacityUnits])).toEqual([
      ['Query', 0.5],
      ['BatchGetItem', 1],
      ['BatchGetItem', 2],
    ]);
  });

  it('fails when the keys stay unprocessed', async () => {
    const doc = DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'us-east-1' }));
    const mock = mockClient(doc);
    mock.on(QueryCommand).resolves({ Items: [{ group: 'blue', hostId: 'a' }] });
    mock.on(BatchGetCommand).resolves({ UnprocessedKeys: { [TABLE]: { Keys: [{ hostId: 'a' }] } } });
    const store = new DynamoHostStore({ client: doc, tableName: TABLE });
    await expect(store.list({ group: 'blue' }, 10)).rejects.toThrow(/unprocessed/);
  });
});

describe('DynamoHostStore capacity reporting', () => {
  it('asks for consumed capacity only when a listener reads it', async () => {
    const doc = DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'us-east-1' }));
    const mock = mockClient(doc);
    mock.on(GetCommand).resolves({ Item: record('a'), ConsumedCapacity: { CapacityUnits: 1 } });
    mock.on(PutCommand).resolves({});
    const reports: string[] = [];
    const metered = new DynamoHostStore({
      client: doc,
      tableName: TABLE,
      onCapacity: (operation) => reports.push(operation),
    });
    const quiet = new DynamoHostStore({ client: doc, tableName: TABLE });

    await metered.get('a');
    await quiet.get('a');
    await quiet.save(record('a') as unknown as Parameters<DynamoHostStore['save']>[0]);

    const gets = mock.commandCalls(GetCommand).map((call) => call.args[0].input.ReturnConsumedCapacity);
    expect(gets).toEqual(['TOTAL', undefined]);
    expect(mock.commandCalls(PutCommand)[0]?.args[0].input.ReturnConsumedCapacity).toBeUndefined();
    expect(reports).toEqual(['GetItem']);
  });
});

describe('DynamoHostStore list by status', () => {
  /** A status index the test lays out by hand: which ids each shard holds, in id order. */
  function fakeIndex(shards: Record<string, string[]>, tableStatus: (hostId: string) => string) {
    const doc = DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'us-east-1' }));
    const mock = mockClient(doc);
    mock.on(QueryCommand).callsFake((input: QueryCommandInput) => {
      const values = input.ExpressionAttributeValues ?? {};
      const shard = values[':shard'] as string;
      const after = values[':after'] as string | undefined;
      const rest = (shards[shard] ?? []).filter((hostId) => after === undefined || hostId > after);
      const ids = rest.slice(0, input.Limit);
      return {
        Items: ids.map((hostId) => ({ statusShard: shard, hostId })),
        ...(rest.length > ids.length ? { LastEvaluatedKey: { statusShard: shard, hostId: ids.at(-1) } } : {}),
      };
    });
    mock.on(BatchGetCommand).callsFake((input: BatchGetCommandInput) => ({
      Responses: {
        [TABLE]: (input.RequestItems?.[TABLE]?.Keys ?? []).map(({ hostId }) => ({
          ...record(hostId as string),
          status: tableStatus(hostId as string),
          statusShard: 'stored',
        })),
      },
    }));
    return { mock, store: new DynamoHostStore({ client: doc, tableName: TABLE }) };
  }

  it('queries every shard, merges them in id order and asks a shard again where it stopped', async () => {
    // The index lags behind the table for c, d and e: they are draining now, so the page needs more of shard 3.
    const lagging = new Set(['c', 'd', 'e']);
    const { mock, store } = fakeIndex(
      { 'running#3': ['a', 'c', 'd', 'e', 'f', 'g', 'h'], 'running#17': ['b'] },
      (hostId) => (lagging.has(hostId) ? 'draining' : 'running'),
    );

    const first = await store.list({ status: 'running' }, 3);

    expect(first.hosts.map((host) => host.hostId)).toEqual(['a', 'b', 'f']);
    for (const host of first.hosts) expect(host).not.toHaveProperty('statusShard');
    const queries = mock.commandCalls(QueryCommand).map((call) => call.args[0].input);
    expect(
      queries.slice(0, STATUS_SHARDS).map((input) => input.ExpressionAttributeValues?.[':shard']),
    ).toEqual(Array.from({ length: STATUS_SHARDS }, (_, shard) => `running#${shard}`));
    for (const input of queries) {
      expect(input.IndexName).toBe('byStatus');
      expect(input.Limit).toBe(4);
    }
    // Only the shard that ran dry with more behind it is asked again, from its last id.
    expect(queries.slice(STATUS_SHARDS).map((input) => input.ExpressionAttributeValues)).toEqual([
      { ':shard': 'running#3', ':after': 'e' },
    ]);
    expect(first.next).toBeDefined();

    mock.resetHistory();
    const second = await store.list({ status: 'running' }, 3, first.next);
    expect(second.hosts.map((host) => host.hostId)).toEqual(['g', 'h']);
    expect(second.next).toBeUndefined();
    const resumed = mock.commandCalls(QueryCommand).map((call) => call.args[0].input);
    expect(resumed).toHaveLength(STATUS_SHARDS);
    for (const input of resumed) {
      expect(input.KeyConditionExpression).toBe('#shard = :shard AND #hostId > :after');
      expect(input.ExpressionAttributeValues?.[':after']).toBe('f');
    }
  });

  it('keeps using the group index when a group is given besides the status', async () => {
    const { mock, store } = fakeIndex({}, () => 'running');
    await store.list({ group: 'blue', status: 'running' }, 3);
    const queries = mock.commandCalls(QueryCommand).map((call) => call.args[0].input);
    expect(queries.map((input) => input.IndexName)).toEqual(['byGroup']);
  });
});

describe('DynamoHostStore status shard key', () => {
  it('is written with every put, from the status and a stable hash of the id', async () => {
    const doc = DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'us-east-1' }));
    const mock = mockClient(doc);
    mock.on(PutCommand).resolves({});
    const store = new DynamoHostStore({ client: doc, tableName: TABLE });
    const host = (hostId: string, status: string) => ({ ...record(hostId), status }) as unknown as HostRecord;

    await store.create(host('a', 'running'));
    await store.save(host('a', 'draining'));
    await store.save(host('b', 'draining'));

    const written = mock.commandCalls(PutCommand).map((call) => call.args[0].input.Item?.statusShard);
    expect(written).toEqual([
      statusShardKey('running', 'a'),
      statusShardKey('draining', 'a'),
      statusShardKey('draining', 'b'),
    ]);
    expect(written[0]?.split('#')[1]).toBe(written[1]?.split('#')[1]);
    for (const key of written) {
      const shard = Number(key?.split('#')[1]);
      expect(Number.isInteger(shard) && shard >= 0 && shard < STATUS_SHARDS).toBe(true);
    }
    // Pinned (FNV-1a of the id, mod 32): the shard is part of the stored data, so it must never move.
    expect(['edge-0001', 'a', 'b', 's-000'].map((id) => statusShardKey('failed', id))).toEqual([
      'failed#0',
      'failed#12',
      'failed#5',
      'failed#15',
    ]);
  });
});
