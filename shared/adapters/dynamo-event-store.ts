import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { PutCommand, QueryCommand, type QueryCommandInput } from '@aws-sdk/lib-dynamodb';
import { ConflictError, ValidationError } from '../errors.ts';
import type { FleetEvent, HostEvent, NewEvent, RecordedEvent } from '../events.ts';
import type { EventPage, EventStore, ReadEventsOptions } from '../ports.ts';
import {
  type CapacityListener,
  checkLimit,
  type DynamoAdapterOptions,
  decodeCursor,
  documentClient,
  encodeCursor,
  isConditionalCheckFailed,
  withoutUndefined,
} from './dynamo-common.ts';

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;

/**
 * Stored item of one event. `lastVersion` is set on every event of a multi-event append: it is the append's
 * claim on the versions after it, so currentVersion() counts versions still being written and no one else
 * appends into them (without transactions the events of one append land one put at a time).
 */
interface EventItem {
  stream: string;
  version: number;
  eventId: string;
  type: FleetEvent['type'];
  data: FleetEvent['data'];
  recordedAt: string;
  lastVersion?: number;
}

export type DynamoEventStoreOptions = DynamoAdapterOptions;

/** Event streams in one table: partition `stream`, sort key `version`, one conditional put per event. */
export class DynamoEventStore implements EventStore {
  private readonly client: DynamoDBDocumentClient;
  private readonly tableName: string;
  private readonly onCapacity: CapacityListener;
  /** Consumed capacity is asked for only when somebody listens: the emulator computes it per item otherwise. */
  private readonly capacity: { ReturnConsumedCapacity?: 'TOTAL' };

  constructor(options: DynamoEventStoreOptions) {
    this.client = documentClient(options.client);
    this.tableName = options.tableName;
    this.onCapacity = options.onCapacity ?? (() => {});
    this.capacity = options.onCapacity ? { ReturnConsumedCapacity: 'TOTAL' } : {};
  }

  async append<E extends FleetEvent = HostEvent>(
    stream: string,
    expectedVersion: number,
    events: readonly NewEvent<E>[],
    recordedAt: Date,
  ): Promise<number> {
    checkStream(stream);
    if (!Number.isSafeInteger(expectedVersion) || expectedVersion < 0) {
      throw new ValidationError('expectedVersion must be a non-negative integer', { expectedVersion });
    }
    if (events.length === 0) return expectedVersion;
    const lastVersion = expectedVersion + events.length;
    const at = recordedAt.toISOString();
    const items = events.map(
      (event, index): EventItem => ({
        stream,
        version: expectedVersion + 1 + index,
        eventId: event.eventId,
        type: event.type,
        data: event.data,
        recordedAt: at,
        ...(events.length > 1 ? { lastVersion } : {}),
      }),
    );
    const [first, ...rest] = items as [EventItem, ...EventItem[]];
    // The first put decides the race: every competitor with the same expectedVersion wants the same version.
    await this.put(first, 0);
    const outcomes = await Promise.allSettled(rest.map((item) => this.put(item, 1)));
    const failed = outcomes.find((outcome) => outcome.status === 'rejected');
    if (failed) throw failed.reason;
    return lastVersion;
  }

  async read<E extends FleetEvent = HostEvent>(
    stream: string,
    options: ReadEventsOptions = {},
  ): Promise<EventPage<E>> {
    checkStream(stream);
    const fromVersion = options.fromVersion ?? 1;
    const toVersion = options.toVersion ?? Number.MAX_SAFE_INTEGER;
    for (const [field, value] of [
      ['fromVersion', fromVersion],
      ['toVersion', toVersion],
    ] as const) {
      if (!Number.isSafeInteger(value) || value < 0) {
        throw new ValidationError(`${field} must be a non-negative integer`, { field, value });
      }
    }
    const limit = checkLimit(options.limit ?? DEFAULT_LIMIT, MAX_LIMIT);
    const forward = (options.direction ?? 'forward') === 'forward';
    let startKey: Record<string, string | number> | undefined;
    if (options.cursor !== undefined) {
      startKey = decodeCursor(options.cursor, { stream: 'string', version: 'number' });
      const version = startKey.version as number;
      if (startKey.stream !== stream || version < fromVersion || version > toVersion) {
        throw new ValidationError('cursor belongs to another stream or range', { field: 'cursor' });
      }
    }
    if (fromVersion > toVersion) return { events: [] };
    // One item more than asked tells whether a next page exists, so `next` never leads to an empty page.
    const input: QueryCommandInput = {
      TableName: this.tableName,
      KeyConditionExpression: '#stream = :stream AND #version BETWEEN :from AND :to',
      ExpressionAttributeNames: { '#stream': 'stream', '#version': 'version' },
      ExpressionAttributeValues: { ':stream': stream, ':from': fromVersion, ':to': toVersion },
      ScanIndexForward: forward,
      Limit: limit + 1,
      ConsistentRead: true,
      ...this.capacity,
      ...(startKey ? { ExclusiveStartKey: startKey } : {}),
    };
    const result = await this.client.send(new QueryCommand(input));
    this.onCapacity('Query', result.ConsumedCapacity);
    const items = (result.Items ?? []) as EventItem[];
    const page = items.slice(0, limit);
    const events = page.map((item) => toRecordedEvent<E>(item));
    const lastOfPage = page.at(-1);
    if (items.length > limit && lastOfPage) {
      return { events, next: encodeCursor({ stream, version: lastOfPage.version }) };
    }
    if (result.LastEvaluatedKey) {
      return { events, next: encodeCursor(result.LastEvaluatedKey as Record<string, string | number>) };
    }
    return { events };
  }

  async currentVersion(stream: string): Promise<number> {
    checkStream(stream);
    const result = await this.client.send(
      new QueryCommand({
        TableName: this.tableName,
        KeyConditionExpression: '#stream = :stream',
        ExpressionAttributeNames: {
          '#stream': 'stream',
          '#version': 'version',
          '#lastVersion': 'lastVersion',
        },
        ExpressionAttributeValues: { ':stream': stream },
        ScanIndexForward: false,
        Limit: 1,
        ProjectionExpression: '#version, #lastVersion',
        ConsistentRead: true,
        ...this.capacity,
      }),
    );
    this.onCapacity('Query', result.ConsumedCapacity);
    const top = result.Items?.[0] as Pick<EventItem, 'version' | 'lastVersion'> | undefined;
    if (!top) return 0;
    return Math.max(top.version, top.lastVersion ?? 0);
  }

  private async put(item: EventItem, alreadyWritten: number): Promise<void> {
    try {
      const result = await this.client.send(
        new PutCommand({
          TableName: this.tableName,
          Item: withoutUndefined(item),
          ConditionExpression: 'attribute_not_exists(#version)',
          ExpressionAttributeNames: { '#version': 'version' },
          ...this.capacity,
        }),
      );
      this.onCapacity('PutItem', result.ConsumedCapacity);
    } catch (error) {
      if (!isConditionalCheckFailed(error)) throw error;
      // AWS charges a failed conditional write but does not report it; undefined lets a meter count the call.
      this.onCapacity('PutItem', undefined);
      throw new ConflictError(
        `stream ${item.stream} already has version ${item.version}`,
        {
          stream: item.stream,
          version: item.version,
          ...(alreadyWritten > 0 ? { partial: true } : {}),
        },
        { cause: error },
      );
    }
  }
}

function checkStream(stream: string): void {
  if (typeof stream !== 'string' || stream.length === 0 || stream.length > 1024) {
    throw new ValidationError('stream must be a non-empty string of at most 1024 characters', {
      field: 'stream',
    });
  }
}

function toRecordedEvent<E extends FleetEvent>(item: EventItem): RecordedEvent<E> {
  return {
    type: item.type,
    data: item.data,
    stream: item.stream,
    version: item.version,
    eventId: item.eventId,
    recordedAt: item.recordedAt,
    // The stream's prefix fixes its event type (see EventStore); the store itself keeps type and data opaque.
  } as unknown as RecordedEvent<E>;
}
