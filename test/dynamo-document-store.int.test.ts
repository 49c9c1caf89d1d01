import { randomBytes } from 'node:crypto';
import { DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import type { APIGatewayProxyEvent } from 'aws-lambda';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiEvent, createApiHandler } from '../functions/api/handler.ts';
import { generatedDocuments } from '../functions/api/openapi.ts';
import { buildApiDeps } from '../functions/wiring.ts';
import { capacityMeter } from '../shared/adapters/capacity.ts';
import { dynamoClient, type RunningDynalite, startDynalite } from '../shared/adapters/dynalite.ts';
import {
  DynamoDocumentStore,
  LISTABLE_KINDS,
  MAX_DOCUMENT_ITEM_BYTES,
} from '../shared/adapters/dynamo-document-store.ts';
import { DynamoEventStore } from '../shared/adapters/dynamo-event-store.ts';
import { createTables, DOCUMENT_INDEXES } from '../shared/adapters/table-schemas.ts';
import { runCommand } from '../shared/command/runner.ts';
import { ConflictError, TooLargeError, ValidationError } from '../shared/errors.ts';
import type { DocumentKind } from '../shared/groups/ports.ts';
import { rolloutDecider } from '../shared/rollouts/rollout-decider.ts';
import { rolloutStream } from '../shared/rollouts/rollout-events.ts';
import { DEMO_YAML } from './support/groups-harness.ts';
import { FakeCipher, RecordingReconcileStarter } from './support/memory-stores.ts';

let dynamo: RunningDynalite;
let raw: ReturnType<typeof dynamoClient>;
let store: DynamoDocumentStore;
let counter = 0;
const at = new Date('2026-01-02T03:04:05.000Z');

beforeAll(async () => {
  dynamo = await startDynalite();
  raw = dynamoClient(dynamo.endpoint);
  store = new DynamoDocumentStore({ client: raw, tableName: dynamo.tables.documents as string });
});

afterAll(async () => {
  raw?.destroy();
  await dynamo?.stop();
});

function freshId(prefix = 'd'): string {
  counter += 1;
  return `${prefix}-${String(counter).padStart(5, '0')}`;
}

/** The item as DynamoDB holds it, read past the adapter by its primary key. */
async function rawItem(tableName: string, key: string) {
  const doc = DynamoDBDocumentClient.from(raw);
  return (await doc.send(new GetCommand({ TableName: tableName, Key: { key }, ConsistentRead: true }))).Item;
}

/** A store that never compresses: the byte accounting of an item, exactly. */
function plainStore() {
  return new DynamoDocumentStore({
    client: raw,
    tableName: dynamo.tables.documents as string,
    compressAboveBytes: Number.POSITIVE_INFINITY,
  });
}

describe('DynamoDocumentStore', () => {
  it('creates the documents table in local mode beside the others', () => {
    expect(dynamo.tables.documents).toBe('fleetfold-documents');
  });

  it('creates a document at version 1 and reads it back as written', async () => {
    const id = freshId();
    const body = { name: 'edge', nested: { list: [1, 'two', null], empty: {} }, flag: true };
    const written = await store.put('group', id, body, 0, at);
    expect(written).toEqual({ kind: 'group', id, version: 1, body, updatedAt: at.toISOString() });
    expect(await store.get('group', id)).toEqual(written);
  });

  it('answers undefined for a document that does not exist', async () => {
    expect(await store.get('rollout', freshId())).toBeUndefined();
  });

  it('keeps kinds apart: the same id under two kinds is two documents', async () => {
    const id = freshId();
    await store.put('desired', id, { of: 'desired' }, 0, at);
    await store.put('plan', id, { of: 'plan' }, 0, at);
    expect((await store.get<{ of: string }>('desired', id))?.body.of).toBe('desired');
    expect((await store.get<{ of: string }>('plan', id))?.body.of).toBe('plan');
  });

  it('rejects creating a document that exists with ConflictError', async () => {
    const id = freshId();
    await store.put('group', id, { n: 1 }, 0, at);
    await expect(store.put('group', id, { n: 2 }, 0, at)).rejects.toBeInstanceOf(ConflictError);
    expect((await store.get<{ n: number }>('group', id))?.body.n).toBe(1);
  });

  it('replaces a document only at the expected version', async () => {
    const id = freshId();
    await store.put('rollout', id, { step: 1 }, 0, at);
    const second = await store.put('rollout', id, { step: 2 }, 1, at);
    expect(second.version).toBe(2);
    await expect(store.put('rollout', id, { step: 'stale' }, 1, at)).rejects.toMatchObject({
      code: 'conflict',
      details: { kind: 'rollout', id, expectedVersion: 1 },
    });
    await expect(store.put('rollout', freshId(), { step: 1 }, 3, at)).rejects.toBeInstanceOf(ConflictError);
    expect(await store.get('rollout', id)).toMatchObject({ version: 2, body: { step: 2 } });
  });

  it('lets exactly one of several racing writers at the same version win', async () => {
    const id = freshId();
    await store.put('desired', id, { writer: 'none' }, 0, at);
    const outcomes = await Promise.allSettled(
      [1, 2, 3, 4, 5].map((writer) => store.put('desired', id, { writer }, 1, at)),
    );
    const won = outcomes.filter((outcome) => outcome.status === 'fulfilled');
    expect(won).toHaveLength(1);
    for (const outcome of outcomes) {
      if (outcome.status === 'rejected') expect(outcome.reason).toBeInstanceOf(ConflictError);
    }
  });

  it('deletes only at the expected version', async () => {
    const id = freshId();
    await store.put('plan', id, {}, 0, at);
    await store.put('plan', id, {}, 1, at);
    await expect(store.delete('plan', id, 1)).rejects.toBeInstanceOf(ConflictError);
    await store.delete('plan', id, 2);
    expect(await store.get('plan', id)).toBeUndefined();
  });

  it('treats deleting an absent document at expected version 0 as done, and at another as a conflict', async () => {
    await expect(store.delete('plan', freshId(), 0)).resolves.toBeUndefined();
    await expect(store.delete('plan', freshId(), 1)).rejects.toBeInstanceOf(ConflictError);
  });

  it('rejects a document over the item limit with TooLargeError before writing anything', async () => {
    const id = freshId();
    const meter = capacityMeter();
    const metered = new DynamoDocumentStore({
      client: raw,
      tableName: dynamo.tables.documents as string,
      onCapacity: meter.onCapacity,
      compressAboveBytes: Number.POSITIVE_INFINITY,
    });
    const error = await metered
      .put('plan', id, { blob: 'x'.repeat(MAX_DOCUMENT_ITEM_BYTES) }, 0, at)
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(TooLargeError);
    expect((error as TooLargeError).details).toMatchObject({
      kind: 'plan',
      id,
      limit: MAX_DOCUMENT_ITEM_BYTES,
    });
    expect(meter.totals().calls).toEqual({});
    expect(await store.get('plan', id)).toBeUndefined();
  });

  it('accepts a document just under the item limit, which DynamoDB stores', async () => {
    const id = freshId();
    // key + kind + id + version + body + updatedAt names and values, with the version counted at its maximum.
    const overhead =
      'key'.length +
      `plan#${id}`.length +
      'kind'.length +
      4 +
      'id'.length +
      id.length +
      'version'.length +
      21 +
      'body'.length;
    const fixed =
      overhead + 'updatedAt'.length + at.toISOString().length + JSON.stringify({ blob: '' }).length;
    const blob = 'y'.repeat(MAX_DOCUMENT_ITEM_BYTES - fixed);
    const written = await plainStore().put('plan', id, { blob }, 0, at);
    expect((await store.get<{ blob: string }>('plan', id))?.body.blob.length).toBe(blob.length);
    expect(written.version).toBe(1);
    await expect(plainStore().put('plan', id, { blob: `${blob}z` }, 1, at)).rejects.toBeInstanceOf(
      TooLargeError,
    );
  });

  it('counts multi-byte characters by their UTF-8 size', async () => {
    const id = freshId();
    const body = { blob: '€'.repeat(Math.ceil(MAX_DOCUMENT_ITEM_BYTES / 3)) };
    await expect(plainStore().put('plan', id, body, 0, at)).rejects.toBeInstanceOf(TooLargeError);
  });

  it('stores a large body gzipped (a rollout naming 10,000 hosts twice fits an item) and reads it back', async () => {
    const id = freshId();
    const hosts = Array.from({ length: 10_000 }, (_, index) => `media-eu-media-${index + 1}`);
    const body = { waves: [{ index: 0, hosts }], hosts: { done: [], pending: hosts, failed: [] } };
    expect(JSON.stringify(body).length).toBeGreaterThan(MAX_DOCUMENT_ITEM_BYTES);

    await store.put('rollout', id, body, 0, at);

    expect((await store.get('rollout', id))?.body).toEqual(body);
    const item = await rawItem(dynamo.tables.documents as string, `rollout#${id}`);
    expect(item?.body).toBeUndefined();
    expect(item?.bodyGzip).toBeInstanceOf(Uint8Array);
    expect((item?.bodyGzip as Uint8Array | undefined)?.byteLength).toBeLessThan(MAX_DOCUMENT_ITEM_BYTES / 4);
  });

  it('still refuses a body that does not compress below the item limit', async () => {
    const id = freshId();
    const blob = randomBytes(MAX_DOCUMENT_ITEM_BYTES).toString('base64');
    await expect(store.put('plan', id, { blob }, 0, at)).rejects.toBeInstanceOf(TooLargeError);
  });

  it('keeps every document in a partition of its own, keyed by kind and id', async () => {
    const table = dynamo.tables.documents as string;
    const { Table } = await raw.send(new DescribeTableCommand({ TableName: table }));
    expect(Table?.KeySchema).toEqual([{ AttributeName: 'key', KeyType: 'HASH' }]);
    const id = freshId();
    const other = freshId();
    const kinds: DocumentKind[] = ['group', 'rollout', 'desired', 'plan', 'lease'];
    for (const kind of kinds) {
      await store.put(kind, id, { of: kind }, 0, at);
      await store.put(kind, other, { of: `${kind} other` }, 0, at);
    }
    for (const kind of kinds) {
      for (const [documentId, of] of [
        [id, kind],
        [other, `${kind} other`],
      ] as const) {
        const item = await rawItem(table, `${kind}#${documentId}`);
        expect(item).toMatchObject({ key: `${kind}#${documentId}`, kind, id: documentId, version: 1 });
        expect(JSON.parse(item?.body as string)).toEqual({ of });
        expect((await store.get<{ of: string }>(kind, documentId))?.body.of).toBe(of);
      }
    }
  });

  it('puts only listable kinds in the byKind index: rollouts, plans and the rest carry no listKind', async () => {
    const table = dynamo.tables.documents as string;
    expect([...LISTABLE_KINDS]).toEqual(['group', 'alarm']);
    const id = freshId();
    for (const kind of ['group', 'rollout', 'desired', 'plan', 'lease'] as const) {
      await store.put(kind, id, {}, 0, at);
    }
    expect((await rawItem(table, `group#${id}`))?.listKind).toBe('group');
    for (const kind of ['rollout', 'desired', 'plan', 'lease']) {
      const item = await rawItem(table, `${kind}#${id}`);
      expect(item).toBeDefined();
      expect(item).not.toHaveProperty('listKind');
    }
    // A replacement keeps the document where it was: in the index or out of it.
    await store.put('rollout', id, { step: 2 }, 1, at);
    expect(await rawItem(table, `rollout#${id}`)).not.toHaveProperty('listKind');
    await store.put('group', id, { step: 2 }, 1, at);
    expect((await rawItem(table, `group#${id}`))?.listKind).toBe('group');
  });

  it('refuses to list a kind that is not listable, naming it', async () => {
    for (const kind of ['rollout', 'desired', 'plan', 'lease'] as const) {
      const error = await store.list(kind, 10).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(ValidationError);
      expect((error as ValidationError).message).toContain(kind);
      expect((error as ValidationError).details).toMatchObject({ field: 'kind', kind });
    }
  });

  it('rejects an unknown kind, an empty id and a bad expected version', async () => {
    await expect(store.get('hosts' as never, 'x')).rejects.toBeInstanceOf(ValidationError);
    await expect(store.put('group', '', {}, 0, at)).rejects.toBeInstanceOf(ValidationError);
    await expect(store.put('group', freshId(), {}, -1, at)).rejects.toBeInstanceOf(ValidationError);
  });

  it('reports the consumed capacity of every request, failed conditional writes included', async () => {
    const meter = capacityMeter();
    const metered = new DynamoDocumentStore({
      client: raw,
      tableName: dynamo.tables.documents as string,
      onCapacity: meter.onCapacity,
      compressAboveBytes: Number.POSITIVE_INFINITY,
    });
    const id = freshId();
    await metered.put('group', id, { a: 1 }, 0, at);
    await metered.get('group', id);
    await metered.put('group', id, { a: 2 }, 0, at).catch(() => {});
    await metered.list('group', 10);
    await metered.delete('group', id, 1);
    const totals = meter.totals();
    expect(totals.calls).toEqual({ PutItem: 2, GetItem: 1, Query: 1, DeleteItem: 1 });
    expect(totals.unreported).toBe(1);
    expect(totals.writeUnits).toBeGreaterThan(0);
    expect(totals.readUnits).toBeGreaterThan(0);
  });
});

describe('DynamoDocumentStore.list', () => {
  /** A table of its own, so listings see exactly the documents these tests put there. */
  let listStore: DynamoDocumentStore;

  beforeAll(async () => {
    await createTables(raw, { events: 'list-events', hosts: 'list-hosts', documents: 'list-documents' });
    listStore = new DynamoDocumentStore({ client: raw, tableName: 'list-documents' });
  });

  it('pages through every document of a kind exactly once, in id order, whatever the page size', async () => {
    const ids = Array.from({ length: 23 }, (_, index) => `g-${String(index).padStart(3, '0')}`);
    for (const id of ids) await listStore.put('group', id, { id }, 0, at);
    await listStore.put('rollout', 'r-elsewhere', {}, 0, at);
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 30 }), async (limit) => {
        const seen: string[] = [];
        let cursor: string | undefined;
        let pages = 0;
        do {
          const page = await listStore.list<{ id: string }>('group', limit, cursor);
          expect(page.documents.length).toBeGreaterThan(0);
          for (const document of page.documents) {
            expect(document.body.id).toBe(document.id);
            seen.push(document.id);
          }
          cursor = page.next;
          pages += 1;
        } while (cursor !== undefined);
        expect(seen).toEqual(ids);
        expect(pages).toBe(Math.ceil(ids.length / limit));
      }),
      { numRuns: 12 },
    );
  });

  it('lists an empty kind as no documents and no cursor', async () => {
    await createTables(raw, { events: 'empty-events', hosts: 'empty-hosts', documents: 'empty-documents' });
    const empty = new DynamoDocumentStore({ client: raw, tableName: 'empty-documents' });
    await empty.put('rollout', 'r-1', {}, 0, at);
    await empty.put('plan', 'p-1', {}, 0, at);
    expect(await empty.list('group', 10)).toEqual({ documents: [] });
  });

  it('serves listings from a sparse index that holds the groups and nothing else', async () => {
    await createTables(raw, {
      events: 'sparse-events',
      hosts: 'sparse-hosts',
      documents: 'sparse-documents',
    });
    const sparse = new DynamoDocumentStore({ client: raw, tableName: 'sparse-documents' });
    const groups = Array.from({ length: 9 }, (_, index) => `g-${index}`);
    for (const [index, id] of groups.entries()) {
      await sparse.put('group', id, { id }, 0, at);
      // Other kinds under the same ids and in between them in id order.
      await sparse.put('rollout', id, { id }, 0, at);
      await sparse.put('plan', `g-${index}-plan`, {}, 0, at);
      await sparse.put('lease', `g-${index}`, {}, 0, at);
    }
    const { Table } = await raw.send(new DescribeTableCommand({ TableName: 'sparse-documents' }));
    expect(Table?.GlobalSecondaryIndexes?.map((index) => [index.IndexName, index.Projection])).toEqual([
      [DOCUMENT_INDEXES.byKind, { ProjectionType: 'ALL' }],
    ]);
    const indexed = await DynamoDBDocumentClient.from(raw).send(
      new ScanCommand({ TableName: 'sparse-documents', IndexName: DOCUMENT_INDEXES.byKind }),
    );
    expect(indexed.Items?.map((item) => item.key).sort()).toEqual(groups.map((id) => `group#${id}`));

    const pages: string[][] = [];
    let cursor: string | undefined;
    do {
      const page = await sparse.list<{ id: string }>('group', 2, cursor);
      pages.push(page.documents.map((document) => document.id));
      for (const document of page.documents) {
        expect(document).toEqual({
          kind: 'group',
          id: document.id,
          version: 1,
          body: { id: document.id },
          updatedAt: at.toISOString(),
        });
      }
      cursor = page.next;
    } while (cursor !== undefined);
    expect(pages).toEqual([['g-0', 'g-1'], ['g-2', 'g-3'], ['g-4', 'g-5'], ['g-6', 'g-7'], ['g-8']]);
  });

  it('lists alarms newest first, page by page, when asked to descend', async () => {
    await createTables(raw, { events: 'alarm-events', hosts: 'alarm-hosts', documents: 'alarm-documents' });
    const alarms = new DynamoDocumentStore({ client: raw, tableName: 'alarm-documents' });
    const ids = [
      '2031-01-01T00:00:00.000Z#a#1',
      '2031-01-02T00:00:00.000Z#a#2',
      '2031-01-03T00:00:00.000Z#b#3',
    ];
    for (const id of ids) await alarms.put('alarm', id, { id }, 0, at);
    const pages: string[][] = [];
    let cursor: string | undefined;
    do {
      const page = await alarms.list('alarm', 2, cursor, { descending: true });
      pages.push(page.documents.map((document) => document.id));
      cursor = page.next;
    } while (cursor !== undefined);
    expect(pages).toEqual([[ids[2], ids[1]], [ids[0]]]);
  });

  it('rejects a cursor from another kind, a forged cursor and an out-of-range limit', async () => {
    const page = await listStore.list('group', 1);
    expect(page.next).toBeDefined();
    await expect(listStore.list('rollout', 1, page.next)).rejects.toBeInstanceOf(ValidationError);
    await expect(listStore.list('group', 1, 'not a cursor')).rejects.toBeInstanceOf(ValidationError);
    await expect(listStore.list('group', 0)).rejects.toBeInstanceOf(ValidationError);
    await expect(listStore.list('group', 1001)).rejects.toBeInstanceOf(ValidationError);
  });
});

describe('groups and rollouts API on DynamoDB', () => {
  it('costs the DynamoDB requests documented per call, and no scans', async () => {
    // Tables of its own: the listing must see only the group this test defines.
    const tables = { events: 'api-events', hosts: 'api-hosts', documents: 'api-documents' };
    await createTables(raw, tables);
    const meter = capacityMeter();
    const handler = createApiHandler(
      buildApiDeps({
        dynamodb: raw,
        eventsTable: tables.events,
        hostsTable: tables.hosts,
        documentsTable: tables.documents,
        cipher: new FakeCipher(),
        reconcile: new RecordingReconcileStarter(),
        onCapacity: meter.onCapacity,
        published: generatedDocuments(),
      }),
    );
    const call = async (method: string, path: string, body?: string, contentType = 'application/json') => {
      meter.reset();
      const event: ApiEvent = {
        httpMethod: method,
        path,
        headers: { 'content-type': contentType },
        queryStringParameters: null,
        body: body ?? null,
        isBase64Encoded: false,
      };
      const result = await handler(event as APIGatewayProxyEvent);
      expect(result.statusCode, result.body).toBeLessThan(300);
      return { body: JSON.parse(result.body) as Record<string, unknown>, calls: meter.totals().calls };
    };
    expect((await call('PUT', '/groups/demo', DEMO_YAML, 'application/yaml')).calls).toEqual({
      GetItem: 1,
      Query: 1,
      PutItem: 2,
    });
    expect((await call('GET', '/groups/demo')).calls).toEqual({ GetItem: 1 });
    expect((await call('GET', '/groups')).calls).toEqual({ Query: 1 });
    expect((await call('POST', '/groups/demo/start')).calls).toEqual({ GetItem: 1, Query: 1, PutItem: 2 });
    const rollout = await call(
      'POST',
      '/groups/demo/rollouts',
      JSON.stringify({ service: 'db', version: '14' }),
    );
    // The group's RolloutRequested and the rollout's own first event (a new stream, so not read first), then
    // both projections.
    expect(rollout.calls).toEqual({ GetItem: 1, Query: 1, PutItem: 4 });
    const id = rollout.body.id as string;
    expect((await call('GET', `/rollouts/${id}`)).calls).toEqual({ GetItem: 1 });
    // The rollout's stream (its projection, the events beyond it, the append, the projection again), then the
    // same for the group's, whose history records the status.
    expect((await call('POST', `/rollouts/${id}/pause`)).calls).toEqual({ GetItem: 2, PutItem: 4, Query: 2 });
    // The rollout ended in its own stream, but the run stopped before its group heard of it (a crash between
    // the two appends): the group still names it active, so the next request reads the rollout, tells the group
    // and asks again.
    const events = new DynamoEventStore({ client: raw, tableName: tables.events });
    await runCommand(
      { events, now: () => at },
      { stream: rolloutStream(id), decider: rolloutDecider, context: () => ({ rolloutId: id }) },
      { type: 'Fail', reason: 'gave up', at },
    );
    const next = await call(
      'POST',
      '/groups/demo/rollouts',
      JSON.stringify({ service: 'db', version: '15' }),
    );
    // A repair, not the usual path: the refused decision, the rollout caught up and projected, the group told,
    // then the request decided again and recorded as above.
    expect(next.calls).toEqual({ GetItem: 4, Query: 4, PutItem: 6 });
  });
});
