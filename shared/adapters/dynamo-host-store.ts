import { setTimeout as sleep } from 'node:timers/promises';
import {
  BatchGetCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  ScanCommand,
  type ScanCommandInput,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { ConflictError, ValidationError } from '../errors.ts';
import type { HeartbeatUpdate, HostFilter, HostPage, HostRecord, HostStore } from '../ports.ts';
import type { HostStatus } from '../schemas.ts';
import {
  type CapacityListener,
  type CursorKey,
  checkLimit,
  type DynamoAdapterOptions,
  decodeCursor,
  documentClient,
  encodeCursor,
  isConditionalCheckFailed,
  withoutUndefined,
} from './dynamo-common.ts';
import { HOST_INDEXES, STATUS_SHARDS } from './table-schemas.ts';

const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 100;
/** BatchGetItem takes at most 100 keys. */
const BATCH_GET_MAX = 100;
const BATCH_GET_ATTEMPTS = 8;
/**
 * Absent, or an older version, or the same version with an older lastSeq (AND binds tighter than OR). Written
 * without parentheses on purpose: dynalite's parser backtracks on them, ~0.3 ms of CPU per write.
 */
const SAVE_CONDITION =
  'attribute_not_exists(#hostId) OR #version < :version OR #version = :version AND #lastSeq < :lastSeq';

export type DynamoHostStoreOptions = DynamoAdapterOptions;

type KeyedFilter = 'group' | 'role' | 'status';

/** Most selective first: a group is a handful of hosts, a role spans groups, a status spans the fleet. */
const INDEX_PREFERENCE: readonly { attribute: KeyedFilter; indexName: string }[] = [
  { attribute: 'group', indexName: HOST_INDEXES.byGroup },
  { attribute: 'role', indexName: HOST_INDEXES.byRole },
  { attribute: 'status', indexName: HOST_INDEXES.byStatus },
];

interface Candidate {
  /** Where a listing resumes after this host: the index key (or table key for a scan) it was found under. */
  key: CursorKey;
  record: HostRecord;
}

interface Batch {
  candidates: Candidate[];
  lastKey?: CursorKey;
}

/** The stored item: the record plus the status index's key, which is no part of the record. */
type HostItem = HostRecord & { statusShard: string };

/** One shard of the status index as a listing reads it: the ids fetched and not yet merged, in id order. */
interface ShardReader {
  statusShard: string;
  hostIds: string[];
  /** The highest id this shard returned, where its next query starts. */
  after?: string;
  done: boolean;
}

/** The byStatus key of a host: spreads one status over STATUS_SHARDS partitions, stable for a host id. */
export function statusShardKey(status: HostStatus, hostId: string): string {
  return shardKey(status, shardOf(hostId));
}

function shardKey(status: HostStatus, shard: number): string {
  return `${status}#${shard}`;
}

/** FNV-1a over the id's UTF-8 bytes: stable across processes and releases, unlike anything seeded. */
function shardOf(hostId: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(hostId, 'utf8')) {
    hash = Math.imul(hash ^ byte, 0x01000193);
  }
  return (hash >>> 0) % STATUS_SHARDS;
}

/** The host projection: one item per host, a version guard on every write so replays and races converge. */
export class DynamoHostStore implements HostStore {
  private readonly client: DynamoDBDocumentClient;
  private readonly tableName: string;
  private readonly onCapacity: CapacityListener;
  /** Consumed capacity is asked for only when somebody listens: the emulator computes it per item otherwise. */
  private readonly capacity: { ReturnConsumedCapacity?: 'TOTAL' };

  constructor(options: DynamoHostStoreOptions) {
    this.client = documentClient(options.client);
    this.tableName = options.tableName;
    this.onCapacity = options.onCapacity ?? (() => {});
    this.capacity = options.onCapacity ? { ReturnConsumedCapacity: 'TOTAL' } : {};
  }

  async get(hostId: string): Promise<HostRecord | undefined> {
    const result = await this.client.send(
      new GetCommand({
        TableName: this.tableName,
        Key: { hostId },
        ConsistentRead: true,
        ...this.capacity,
      }),
    );
    this.onCapacity('GetItem', result.ConsumedCapacity);
    return result.Item ? toRecord(result.Item) : undefined;
  }

  async create(record: HostRecord): Promise<void> {
    const written = await this.conditionalPut(record, {
      ConditionExpression: 'attribute_not_exists(#hostId)',
      ExpressionAttributeNames: { '#hostId': 'hostId' },
    });
    if (!written) throw new ConflictError(`host ${record.hostId} exists already`, { hostId: record.hostId });
  }

  save(record: HostRecord): Promise<boolean> {
    return this.conditionalPut(record, {
      ConditionExpression: SAVE_CONDITION,
      ExpressionAttributeNames: { '#hostId': 'hostId', '#version': 'version', '#lastSeq': 'lastSeq' },
      ExpressionAttributeValues: { ':version': record.version, ':lastSeq': record.lastSeq },
    });
  }

  async touch(update: HeartbeatUpdate): Promise<boolean> {
    try {
      const result = await this.client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { hostId: update.hostId },
          UpdateExpression: 'SET #lastSeq = :lastSeq, #lastSeen = :lastSeen, #metrics = :metrics',
          ConditionExpression: '#version = :version AND #lastSeq < :lastSeq',
          ExpressionAttributeNames: {
            '#version': 'version',
            '#lastSeq': 'lastSeq',
            '#lastSeen': 'lastSeen',
            '#metrics': 'metrics',
          },
          ExpressionAttributeValues: withoutUndefined({
            ':version': update.version,
            ':lastSeq': update.lastSeq,
            ':lastSeen': update.lastSeen,
            ':metrics': update.metrics,
          }),
          ...this.capacity,
        }),
      );
      this.onCapacity('UpdateItem', result.ConsumedCapacity);
      return true;
    } catch (error) {
      if (!isConditionalCheckFailed(error)) throw error;
      this.onCapacity('UpdateItem', undefined);
      return false;
    }
  }

  async list(filter: HostFilter, limit: number = DEFAULT_LIMIT, cursor?: string): Promise<HostPage> {
    checkLimit(limit, MAX_LIMIT);
    checkFilter(filter);
    const index = INDEX_PREFERENCE.find(({ attribute }) => filter[attribute] !== undefined);
    let startKey: CursorKey | undefined;
    if (cursor !== undefined) {
      if (index) {
        startKey = decodeCursor(cursor, { [index.attribute]: 'string', hostId: 'string' });
        if (startKey[index.attribute] !== filter[index.attribute]) {
          throw new ValidationError('cursor belongs to another listing', { field: 'cursor' });
        }
      } else {
        startKey = decodeCursor(cursor, { hostId: 'string' });
      }
    }
    if (index?.attribute === 'status') {
      return this.listByStatus(filter, limit, startKey?.hostId as string | undefined);
    }
    // Limit + 1 matches tell whether there is a next page, so `next` never leads to an empty one.
    const found: Candidate[] = [];
    for (;;) {
      const batch = index
        ? await this.queryIndex(index.indexName, index.attribute, filter, limit + 1, startKey)
        : await this.scan(filter, limit + 1, startKey);
      found.push(...batch.candidates.filter(({ record }) => matches(record, filter)));
      startKey = batch.lastKey;
      if (found.length > limit || !startKey) break;
    }
    const page = found.slice(0, limit);
    const hosts = page.map(({ record }) => record);
    const last = page.at(-1);
    if (found.length > limit && last) return { hosts, next: encodeCursor(last.key) };
    return startKey ? { hosts, next: encodeCursor(startKey) } : { hosts };
  }

  private async conditionalPut(
    record: HostRecord,
    condition: {
      ConditionExpression: string;
      ExpressionAttributeNames: Record<string, string>;
      ExpressionAttributeValues?: Record<string, unknown>;
    },
  ): Promise<boolean> {
    try {
      const result = await this.client.send(
        new PutCommand({
          TableName: this.tableName,
          Item: withoutUndefined(toItem(record)),
          ...condition,
          ...this.capacity,
        }),
      );
      this.onCapacity('PutItem', result.ConsumedCapacity);
      return true;
    } catch (error) {
      if (!isConditionalCheckFailed(error)) throw error;
      this.onCapacity('PutItem', undefined);
      return false;
    }
  }

  /**
   * The indexes hold keys only, and their FilterExpression could not see the rest of the item: fetch the items
   * by key and let `matches` apply the whole filter, which also drops index entries that lag behind the table.
   */
  private async queryIndex(
    indexName: string,
    attribute: KeyedFilter,
    filter: HostFilter,
    pageSize: number,
    startKey: CursorKey | undefined,
  ): Promise<Batch> {
    const result = await this.client.send(
      new QueryCommand({
        TableName: this.tableName,
        IndexName: indexName,
        KeyConditionExpression: '#key = :key',
        ExpressionAttributeNames: { '#key': attribute },
        ExpressionAttributeValues: { ':key': filter[attribute] },
        Limit: pageSize,
        ...this.capacity,
        ...(startKey ? { ExclusiveStartKey: startKey } : {}),
      }),
    );
    this.onCapacity('Query', result.ConsumedCapacity);
    const keys = (result.Items ?? []) as CursorKey[];
    const records = await this.batchGet(keys.map((key) => key.hostId as string));
    const candidates: Candidate[] = [];
    for (const key of keys) {
      const record = records.get(key.hostId as string);
      if (record)
        candidates.push({ key: { [attribute]: key[attribute] as string, hostId: record.hostId }, record });
    }
    return {
      candidates,
      ...(result.LastEvaluatedKey ? { lastKey: result.LastEvaluatedKey as CursorKey } : {}),
    };
  }

  /**
   * Every shard holds part of the status in id order: query them all at once and merge, taking the smallest
   * ids first. A shard that runs dry before the page is full is asked again from where it stopped, since its
   * next id may be smaller than what the others hold. Each shard is asked for a whole page: a Query is billed by
   * the 4 KB read, so fewer keys would cost as much and need more rounds.
   */
  private async listByStatus(
    filter: HostFilter,
    limit: number,
    after: string | undefined,
  ): Promise<HostPage> {
    const status = filter.status as HostStatus;
    const shards: ShardReader[] = Array.from({ length: STATUS_SHARDS }, (_, shard) => ({
      statusShard: shardKey(status, shard),
      hostIds: [],
      ...(after !== undefined ? { after } : {}),
      done: false,
    }));
    const found: HostRecord[] = [];
    for (;;) {
      const dry = shards.filter((shard) => shard.hostIds.length === 0 && !shard.done);
      await Promise.all(dry.map((shard) => this.readShard(shard, limit + 1)));
      const wanted = limit + 1 - found.length;
      const picked: string[] = [];
      while (picked.length < wanted && !shards.some((shard) => shard.hostIds.length === 0 && !shard.done)) {
        let smallest: ShardReader | undefined;
        for (const shard of shards) {
          const head = shard.hostIds[0];
          if (head !== undefined && (!smallest || byteOrder(head, smallest.hostIds[0] as string) < 0)) {
            smallest = shard;
          }
        }
        if (!smallest) break;
        picked.push(smallest.hostIds.shift() as string);
      }
      const records = await this.batchGet(picked);
      for (const hostId of picked) {
        const record = records.get(hostId);
        if (record && matches(record, filter)) found.push(record);
      }
      if (found.length > limit) break;
      if (shards.every((shard) => shard.done && shard.hostIds.length === 0)) break;
    }
    const hosts = found.slice(0, limit);
    const last = hosts.at(-1);
    if (found.length > limit && last) return { hosts, next: encodeCursor({ status, hostId: last.hostId }) };
    return { hosts };
  }

  private async readShard(shard: ShardReader, pageSize: number): Promise<void> {
    const result = await this.client.send(
      new QueryCommand({
        TableName: this.tableName,
        IndexName: HOST_INDEXES.byStatus,
        KeyConditionExpression:
          shard.after === undefined ? '#shard = :shard' : '#shard = :shard AND #hostId > :after',
        ExpressionAttributeNames: {
          '#shard': 'statusShard',
          ...(shard.after === undefined ? {} : { '#hostId': 'hostId' }),
        },
        ExpressionAttributeValues: {
          ':shard': shard.statusShard,
          ...(shard.after === undefined ? {} : { ':after': shard.after }),
        },
        Limit: pageSize,
        ...this.capacity,
      }),
    );
    this.onCapacity('Query', result.ConsumedCapacity);
    const hostIds = ((result.Items ?? []) as CursorKey[]).map((key) => key.hostId as string);
    shard.hostIds.push(...hostIds);
    const last = hostIds.at(-1) ?? (result.LastEvaluatedKey?.hostId as string | undefined);
    if (last !== undefined) shard.after = last;
    shard.done = !result.LastEvaluatedKey;
  }

  private async scan(filter: HostFilter, pageSize: number, startKey: CursorKey | undefined): Promise<Batch> {
    const result = await this.client.send(
      new ScanCommand({
        TableName: this.tableName,
        Limit: pageSize,
        ConsistentRead: true,
        ...this.capacity,
        ...filterExpression(filter),
        ...(startKey ? { ExclusiveStartKey: startKey } : {}),
      }),
    );
    this.onCapacity('Scan', result.ConsumedCapacity);
    const candidates = (result.Items ?? []).map((item) => {
      const record = toRecord(item);
      return { key: { hostId: record.hostId }, record };
    });
    return {
      candidates,
      ...(result.LastEvaluatedKey ? { lastKey: result.LastEvaluatedKey as CursorKey } : {}),
    };
  }

  private async batchGet(hostIds: readonly string[]): Promise<Map<string, HostRecord>> {
    const records = new Map<string, HostRecord>();
    for (let offset = 0; offset < hostIds.length; offset += BATCH_GET_MAX) {
      let keys: Record<string, unknown>[] = hostIds
        .slice(offset, offset + BATCH_GET_MAX)
        .map((hostId) => ({ hostId }));
      for (let attempt = 1; keys.length > 0; attempt += 1) {
        if (attempt > BATCH_GET_ATTEMPTS) {
          throw new Error(
            `BatchGetItem left ${keys.length} keys unprocessed after ${BATCH_GET_ATTEMPTS} attempts`,
          );
        }
        // Unprocessed keys mean throttling: back off before asking again.
        if (attempt > 1) await sleep(Math.random() * Math.min(1000, 25 * 2 ** attempt));
        const result = await this.client.send(
          new BatchGetCommand({
            RequestItems: { [this.tableName]: { Keys: keys, ConsistentRead: true } },
            ...this.capacity,
          }),
        );
        for (const consumed of result.ConsumedCapacity ?? []) this.onCapacity('BatchGetItem', consumed);
        for (const item of result.Responses?.[this.tableName] ?? []) {
          const record = toRecord(item);
          records.set(record.hostId, record);
        }
        keys = result.UnprocessedKeys?.[this.tableName]?.Keys ?? [];
      }
    }
    return records;
  }
}

function toItem(record: HostRecord): HostItem {
  return { ...record, statusShard: statusShardKey(record.status, record.hostId) };
}

function toRecord(item: object): HostRecord {
  const { statusShard: _, ...record } = item as HostItem;
  return record;
}

/** DynamoDB orders string keys by their UTF-8 bytes; the merge must agree with it. */
function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function checkFilter(filter: HostFilter): void {
  for (const field of ['group', 'role', 'status', 'service', 'version'] as const) {
    const value = filter[field];
    if (value !== undefined && (typeof value !== 'string' || value.length === 0)) {
      throw new ValidationError(`filter ${field} must be a non-empty string`, { field });
    }
  }
  if (filter.version !== undefined && filter.service === undefined) {
    throw new ValidationError('a version filter needs a service', { field: 'version' });
  }
}

function matches(record: HostRecord, filter: HostFilter): boolean {
  if (filter.group !== undefined && record.group !== filter.group) return false;
  if (filter.role !== undefined && record.role !== filter.role) return false;
  if (filter.status !== undefined && record.status !== filter.status) return false;
  if (filter.service !== undefined) {
    const software = record.observed?.software ?? {};
    if (!Object.hasOwn(software, filter.service)) return false;
    if (filter.version !== undefined && software[filter.service]?.version !== filter.version) return false;
  }
  return true;
}

/** The same filter as `matches`, for a scan, so non-matching items are not sent back. */
function filterExpression(
  filter: HostFilter,
): Pick<ScanCommandInput, 'FilterExpression' | 'ExpressionAttributeNames' | 'ExpressionAttributeValues'> {
  const conditions: string[] = [];
  const names: Record<string, string> = {};
  const values: Record<string, unknown> = {};
  for (const field of ['group', 'role', 'status'] as const) {
    const value = filter[field];
    if (value === undefined) continue;
    conditions.push(`#${field} = :${field}`);
    names[`#${field}`] = field;
    values[`:${field}`] = value;
  }
  if (filter.service !== undefined) {
    Object.assign(names, { '#observed': 'observed', '#software': 'software', '#svc': filter.service });
    conditions.push('attribute_exists(#observed.#software.#svc)');
    if (filter.version !== undefined) {
      names['#version'] = 'version';
      values[':version'] = filter.version;
      conditions.push('#observed.#software.#svc.#version = :version');
    }
  }
  if (conditions.length === 0) return {};
  return {
    FilterExpression: conditions.join(' AND '),
    ExpressionAttributeNames: names,
    ...(Object.keys(values).length > 0 ? { ExpressionAttributeValues: values } : {}),
  };
}
