import { type ConsumedCapacity, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { ValidationError } from '../errors.ts';

/** Called once per DynamoDB response (per table for batch calls); benchmarks sum read and write units from it. */
export type CapacityListener = (operation: string, consumed: ConsumedCapacity | undefined) => void;

export interface DynamoAdapterOptions {
  client: DynamoDBDocumentClient | DynamoDBClient;
  tableName: string;
  onCapacity?: CapacityListener;
}

export function documentClient(client: DynamoDBDocumentClient | DynamoDBClient): DynamoDBDocumentClient {
  if (client instanceof DynamoDBDocumentClient) return client;
  if (client instanceof DynamoDBClient) {
    return DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  }
  throw new TypeError('client must be a DynamoDBClient or a DynamoDBDocumentClient');
}

/**
 * A caller's document client may not have been built with removeUndefinedValues, and the marshaller throws on
 * undefined; stripping here keeps stored items equal to what a JSON round trip of the record would give.
 */
export function withoutUndefined<T>(value: T): T {
  if (Array.isArray(value)) return value.map((item) => withoutUndefined(item)) as T;
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      if (item !== undefined) out[key] = withoutUndefined(item);
    }
    return out as T;
  }
  return value;
}

export function isConditionalCheckFailed(error: unknown): boolean {
  return error instanceof Error && error.name === 'ConditionalCheckFailedException';
}

export type CursorKey = Record<string, string | number>;

export function encodeCursor(key: CursorKey): string {
  return Buffer.from(JSON.stringify(key), 'utf8').toString('base64url');
}

/** Decodes a cursor into a key with exactly the attributes `shape` names, of the types it names. */
export function decodeCursor(cursor: string, shape: Record<string, 'string' | 'number'>): CursorKey {
  const invalid = (cause?: unknown) =>
    new ValidationError('cursor is not one this listing handed out', { field: 'cursor' }, { cause });
  if (!/^[A-Za-z0-9_-]{1,2048}$/.test(cursor)) throw invalid();
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch (error) {
    throw invalid(error);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw invalid();
  const entries = Object.entries(parsed);
  const expected = Object.entries(shape);
  if (entries.length !== expected.length) throw invalid();
  for (const [name, type] of expected) {
    const value = (parsed as Record<string, unknown>)[name];
    if (typeof value !== type) throw invalid();
    if (type === 'number' && !Number.isSafeInteger(value)) throw invalid();
  }
  return parsed as CursorKey;
}

export function checkLimit(limit: number, max: number): number {
  if (!Number.isInteger(limit) || limit < 1 || limit > max) {
    throw new ValidationError(`limit must be an integer from 1 to ${max}`, { field: 'limit', limit });
  }
  return limit;
}
