import { BatchGetCommand, type DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import {
  cleanCounts,
  hourOf,
  hoursBetween,
  USAGE_COUNTERS,
  type UsageCounter,
  type UsageCounts,
  type UsageReader,
} from '../cost/usage.ts';
import { type CapacityListener, type DynamoAdapterOptions, documentClient } from './dynamo-common.ts';

const KEY_PREFIX = 'usage#';
/** BatchGetItem's limit. */
const BATCH = 100;

/**
 * The hourly usage counters as items of the documents table (`usage#2026-12-02T15`), beside the documents but
 * outside their kinds and their index: one UpdateItem ADD per invocation (about 1 WRU; atomic, so parallel
 * invocations never lose a count), and 24 items read by one BatchGetItem for a day.
 */
export class DynamoUsageCounter implements UsageCounter, UsageReader {
  private readonly client: DynamoDBDocumentClient;
  private readonly tableName: string;
  private readonly onCapacity: CapacityListener;

  constructor(options: DynamoAdapterOptions) {
    this.client = documentClient(options.client);
    this.tableName = options.tableName;
    this.onCapacity = options.onCapacity ?? (() => {});
  }

  async add(at: Date, counts: UsageCounts): Promise<void> {
    const entries = Object.entries(cleanCounts(counts));
    if (entries.length === 0) return;
    const names: Record<string, string> = { '#kind': 'kind' };
    const values: Record<string, unknown> = { ':kind': 'usage' };
    const adds = entries.map(([name, value], index) => {
      names[`#c${index}`] = name;
      values[`:c${index}`] = value;
      return `#c${index} :c${index}`;
    });
    const result = await this.client.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: { key: `${KEY_PREFIX}${hourOf(at)}` },
        UpdateExpression: `SET #kind = :kind ADD ${adds.join(', ')}`,
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
        ReturnConsumedCapacity: 'TOTAL',
      }),
    );
    this.onCapacity('UpdateItem', result.ConsumedCapacity);
  }

  async hours(from: Date, to: Date): Promise<{ hour: string; counts: UsageCounts }[]> {
    const wanted = hoursBetween(from, to);
    const found = new Map<string, UsageCounts>();
    for (let start = 0; start < wanted.length; start += BATCH) {
      let keys: Record<string, unknown>[] | undefined = wanted
        .slice(start, start + BATCH)
        .map((hour) => ({ key: `${KEY_PREFIX}${hour}` }));
      // Unprocessed keys come back under throttling: ask again for exactly those.
      for (let attempt = 0; keys && keys.length > 0 && attempt < 5; attempt += 1) {
        const result = await this.client.send(
          new BatchGetCommand({
            RequestItems: { [this.tableName]: { Keys: keys } },
            ReturnConsumedCapacity: 'TOTAL',
          }),
        );
        for (const consumed of result.ConsumedCapacity ?? []) this.onCapacity('BatchGetItem', consumed);
        for (const item of result.Responses?.[this.tableName] ?? []) {
          const counts: UsageCounts = {};
          for (const name of USAGE_COUNTERS) if (typeof item[name] === 'number') counts[name] = item[name];
          found.set(String(item.key).slice(KEY_PREFIX.length), counts);
        }
        keys = result.UnprocessedKeys?.[this.tableName]?.Keys as Record<string, unknown>[] | undefined;
      }
    }
    return wanted.filter((hour) => found.has(hour)).map((hour) => ({ hour, counts: found.get(hour) ?? {} }));
  }
}
