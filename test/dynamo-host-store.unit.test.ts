import type { ConsumedCapacity } from '@aws-sdk/client-dynamodb';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
} from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it } from 'vitest';
import { DynamoHostStore } from '../shared/adapters/dynamo-host-store.ts';

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
