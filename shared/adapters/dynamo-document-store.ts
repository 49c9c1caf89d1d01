import { gunzipSync, gzipSync } from 'node:zlib';
import {
  DeleteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
} from '@aws-sdk/lib-dynamodb';
import { ConflictError, TooLargeError, ValidationError } from '../errors.ts';
import type { DocumentKind, DocumentStore, PutOptions, StoredDocument } from '../groups/ports.ts';
import {
  type CapacityListener,
  checkLimit,
  type DynamoAdapterOptions,
  decodeCursor,
  documentClient,
  encodeCursor,
  isConditionalCheckFailed,
} from './dynamo-common.ts';
import { DOCUMENT_EXPIRY_ATTRIBUTE, DOCUMENT_INDEXES } from './table-schemas.ts';

const DOCUMENT_KINDS: ReadonlySet<string> = new Set<DocumentKind>([
  'group',
  'rollout',
  'desired',
  'plan',
  'lease',
  'alarm',
  'scaling',
  'scaling-demand',
]);
/**
 * The kinds `list` serves, the only ones written to the byKind index: few and small, so the index (one
 * partition per kind) stays cold while rollouts, plans and leases are written at fleet rate. Alarms are
 * written once each (and once more when their episode clears): a handful an hour, not fleet rate.
 */
export const LISTABLE_KINDS: ReadonlySet<DocumentKind> = new Set<DocumentKind>(['group', 'alarm']);
const MAX_LIST_LIMIT = 1000;
/** DynamoDB's item limit, attribute names included. */
export const MAX_DOCUMENT_ITEM_BYTES = 400 * 1024;
/** A DynamoDB number takes at most 21 bytes; counting the maximum keeps the size estimate an upper bound. */
const NUMBER_BYTES = 21;

/**
 * Stored item. The body is kept as one JSON string rather than a map: its size is then exactly known before
 * the write (a map's per-element overhead is not), there is no 32-level nesting limit, and nothing reads
 * inside a document on the server side.
 */
interface DocumentItem {
  /** `${kind}#${id}`: the table's partition key, one partition per document. */
  key: string;
  /** Present only for listable kinds, which puts exactly those in the sparse byKind index. */
  listKind?: DocumentKind;
  kind: DocumentKind;
  id: string;
  version: number;
  /** The JSON body; a large one is kept gzipped in `bodyGzip` instead (one of the two is present). */
  body?: string;
  bodyGzip?: Uint8Array;
  updatedAt: string;
  /** Epoch seconds after which DynamoDB's TTL deletes the item; only with an expiry. */
  [DOCUMENT_EXPIRY_ATTRIBUTE]?: number;
}

/**
 * Bodies above this are stored gzipped. A rollout over thousands of hosts names each host in its waves and its
 * host lists: ids compress tenfold, which keeps such a document far inside the item limit.
 */
export const COMPRESS_ABOVE_BYTES = 16 * 1024;

export type DynamoDocumentStoreOptions = DynamoAdapterOptions & {
  /** Bodies larger than this many bytes of JSON are stored gzipped; default COMPRESS_ABOVE_BYTES. */
  compressAboveBytes?: number;
};

/** Versioned documents, one item each (pk `${kind}#${id}`), written only with a version guard. */
export class DynamoDocumentStore implements DocumentStore {
  private readonly client: DynamoDBDocumentClient;
  private readonly tableName: string;
  private readonly onCapacity: CapacityListener;
  private readonly compressAboveBytes: number;

  constructor(options: DynamoDocumentStoreOptions) {
    this.client = documentClient(options.client);
    this.tableName = options.tableName;
    this.onCapacity = options.onCapacity ?? (() => {});
    this.compressAboveBytes = options.compressAboveBytes ?? COMPRESS_ABOVE_BYTES;
  }

  async get<T>(kind: DocumentKind, id: string): Promise<StoredDocument<T> | undefined> {
    checkKey(kind, id);
    const result = await this.client.send(
      new GetCommand({
        TableName: this.tableName,
        Key: { key: documentKey(kind, id) },
        ConsistentRead: true,
        ReturnConsumedCapacity: 'TOTAL',
      }),
    );
    this.onCapacity('GetItem', result.ConsumedCapacity);
    return result.Item ? toDocument<T>(result.Item as DocumentItem) : undefined;
  }

  async put<T>(
    kind: DocumentKind,
    id: string,
    body: T,
    expectedVersion: number,
    updatedAt: Date,
    options: PutOptions = {},
  ): Promise<StoredDocument<T>> {
    checkKey(kind, id);
    checkExpectedVersion(expectedVersion);
    if (options.expiresAt !== undefined && !Number.isFinite(options.expiresAt.getTime())) {
      throw new ValidationError('expiresAt must be a valid time', { kind, id });
    }
    const json = JSON.stringify(body);
    if (json === undefined) throw new ValidationError('a document body must be JSON', { kind, id });
    const large = Buffer.byteLength(json, 'utf8') > this.compressAboveBytes;
    const item: DocumentItem = {
      key: documentKey(kind, id),
      ...(LISTABLE_KINDS.has(kind) ? { listKind: kind } : {}),
      kind,
      id,
      version: expectedVersion + 1,
      ...(large ? { bodyGzip: new Uint8Array(gzipSync(json)) } : { body: json }),
      updatedAt: updatedAt.toISOString(),
      ...(options.expiresAt === undefined
        ? {}
        : { [DOCUMENT_EXPIRY_ATTRIBUTE]: Math.ceil(options.expiresAt.getTime() / 1000) }),
    };
    const size = itemBytes(item);
    if (size > MAX_DOCUMENT_ITEM_BYTES) {
      throw new TooLargeError(
        `${kind} document "${id}" would take ${size} bytes; DynamoDB items hold at most ${MAX_DOCUMENT_ITEM_BYTES}`,
        { kind, id, size, limit: MAX_DOCUMENT_ITEM_BYTES },
      );
    }
    try {
      const result = await this.client.send(
        new PutCommand({
          TableName: this.tableName,
          Item: item,
          ...versionGuard(expectedVersion),
          ReturnConsumedCapacity: 'TOTAL',
        }),
      );
      this.onCapacity('PutItem', result.ConsumedCapacity);
    } catch (error) {
      throw conflictOr(error, 'PutItem', kind, id, expectedVersion, this.onCapacity);
    }
    return { kind, id, version: item.version, body: JSON.parse(json) as T, updatedAt: item.updatedAt };
  }

  async delete(kind: DocumentKind, id: string, expectedVersion: number): Promise<void> {
    checkKey(kind, id);
    checkExpectedVersion(expectedVersion);
    try {
      const result = await this.client.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: { key: documentKey(kind, id) },
          ...versionGuard(expectedVersion),
          ReturnConsumedCapacity: 'TOTAL',
        }),
      );
      this.onCapacity('DeleteItem', result.ConsumedCapacity);
    } catch (error) {
      throw conflictOr(error, 'DeleteItem', kind, id, expectedVersion, this.onCapacity);
    }
  }

  async list<T>(
    kind: DocumentKind,
    limit: number,
    cursor?: string,
    options: { descending?: boolean } = {},
  ): Promise<{ documents: StoredDocument<T>[]; next?: string }> {
    checkKind(kind);
    if (!LISTABLE_KINDS.has(kind)) {
      throw new ValidationError(
        `${kind} documents cannot be listed; only ${[...LISTABLE_KINDS].join(', ')} documents can`,
        { field: 'kind', kind },
      );
    }
    checkLimit(limit, MAX_LIST_LIMIT);
    let startKey: Record<string, string> | undefined;
    if (cursor !== undefined) {
      const after = decodeCursor(cursor, { kind: 'string', id: 'string' });
      if (after.kind !== kind) {
        throw new ValidationError('cursor belongs to another listing', { field: 'cursor' });
      }
      const id = after.id as string;
      // An index's start key names the table's key as well as its own.
      startKey = { listKind: kind, id, key: documentKey(kind, id) };
    }
    // One item more than asked tells whether a next page exists, so `next` never leads to an empty page. A
    // global index cannot be read strongly consistently: a group written a moment ago may be missing here.
    const result = await this.client.send(
      new QueryCommand({
        TableName: this.tableName,
        IndexName: DOCUMENT_INDEXES.byKind,
        KeyConditionExpression: '#listKind = :kind',
        ExpressionAttributeNames: { '#listKind': 'listKind' },
        ExpressionAttributeValues: { ':kind': kind },
        Limit: limit + 1,
        ...(options.descending ? { ScanIndexForward: false } : {}),
        ReturnConsumedCapacity: 'TOTAL',
        ...(startKey ? { ExclusiveStartKey: startKey } : {}),
      }),
    );
    this.onCapacity('Query', result.ConsumedCapacity);
    const items = (result.Items ?? []) as DocumentItem[];
    const page = items.slice(0, limit);
    const documents = page.map((item) => toDocument<T>(item));
    const last = page.at(-1);
    if (items.length > limit && last) return { documents, next: encodeCursor({ kind, id: last.id }) };
    // A page cut short by the 1 MB response limit still has more behind it.
    const lastEvaluated = result.LastEvaluatedKey as Partial<DocumentItem> | undefined;
    if (lastEvaluated?.id !== undefined) {
      return { documents, next: encodeCursor({ kind, id: lastEvaluated.id }) };
    }
    return { documents };
  }
}

function versionGuard(expectedVersion: number) {
  return expectedVersion === 0
    ? {
        ConditionExpression: 'attribute_not_exists(#version)',
        ExpressionAttributeNames: { '#version': 'version' },
      }
    : {
        ConditionExpression: '#version = :expected',
        ExpressionAttributeNames: { '#version': 'version' },
        ExpressionAttributeValues: { ':expected': expectedVersion },
      };
}

function conflictOr(
  error: unknown,
  operation: string,
  kind: DocumentKind,
  id: string,
  expectedVersion: number,
  onCapacity: CapacityListener,
): unknown {
  if (!isConditionalCheckFailed(error)) return error;
  // AWS bills a failed conditional write but does not report it; undefined lets a meter count the call.
  onCapacity(operation, undefined);
  const expected = expectedVersion === 0 ? 'not to exist' : `to be at version ${expectedVersion}`;
  return new ConflictError(
    `${kind} document "${id}" was expected ${expected}; somebody else changed it`,
    { kind, id, expectedVersion },
    { cause: error },
  );
}

/** UTF-8 bytes of names and values: at least what DynamoDB counts, so a write it would refuse is refused here. */
function itemBytes(item: DocumentItem): number {
  let size = 0;
  for (const [name, value] of Object.entries(item)) {
    size += Buffer.byteLength(name, 'utf8');
    size +=
      typeof value === 'number'
        ? NUMBER_BYTES
        : value instanceof Uint8Array
          ? value.byteLength
          : Buffer.byteLength(String(value), 'utf8');
  }
  return size;
}

function documentKey(kind: DocumentKind, id: string): string {
  // Kinds hold no '#', so the first one separates kind from id and no two (kind, id) pairs share a key.
  return `${kind}#${id}`;
}

function toDocument<T>(item: DocumentItem): StoredDocument<T> {
  return {
    kind: item.kind,
    id: item.id,
    version: item.version,
    body: JSON.parse(item.bodyGzip ? gunzipSync(item.bodyGzip).toString('utf8') : (item.body ?? 'null')) as T,
    updatedAt: item.updatedAt,
  };
}

function checkKind(kind: DocumentKind): void {
  if (!DOCUMENT_KINDS.has(kind)) {
    throw new ValidationError(`"${String(kind)}" is not a document kind`, { field: 'kind' });
  }
}

function checkKey(kind: DocumentKind, id: string): void {
  checkKind(kind);
  // DynamoDB refuses empty key strings and sort keys (the id is byKind's) over 1024 bytes with an opaque error.
  if (typeof id !== 'string' || id.length === 0 || Buffer.byteLength(id, 'utf8') > 1024) {
    throw new ValidationError('a document id must be a non-empty string of at most 1024 bytes', {
      field: 'id',
    });
  }
}

function checkExpectedVersion(expectedVersion: number): void {
  if (!Number.isSafeInteger(expectedVersion) || expectedVersion < 0) {
    throw new ValidationError('expectedVersion must be a non-negative integer', { expectedVersion });
  }
}
