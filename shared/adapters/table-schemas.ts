import {
  CreateTableCommand,
  type CreateTableCommandInput,
  DescribeTableCommand,
  type DynamoDBClient,
  ResourceInUseException,
  type TableDescription,
} from '@aws-sdk/client-dynamodb';

/*
 * The table layouts as plain data, so the CDK stack, local mode and the tests build the same tables.
 * Attribute types use DynamoDB's letters, which are also the values of CDK's AttributeType enum.
 */

export interface KeyAttribute {
  name: string;
  type: 'S' | 'N';
}

export interface GlobalIndexSchema {
  indexName: string;
  partitionKey: KeyAttribute;
  sortKey: KeyAttribute;
  /**
   * KEYS_ONLY: an index entry costs only its keys; readers fetch the items they need by primary key. ALL: for a
   * small sparse index, where copying its few items costs less than a second read for each one listed.
   */
  projection: 'KEYS_ONLY' | 'ALL';
}

export interface TableSchema {
  partitionKey: KeyAttribute;
  sortKey?: KeyAttribute;
  globalIndexes: readonly GlobalIndexSchema[];
  billingMode: 'PAY_PER_REQUEST';
  /**
   * The number attribute (epoch seconds) DynamoDB's TTL deletes items by, some time after it passed. The CDK
   * table turns it on; local mode cannot: dynalite has no UpdateTimeToLive and never expires an item (its
   * DescribeTimeToLive always answers DISABLED), which local runs, hours not weeks long, do not notice.
   */
  timeToLiveAttribute?: string;
}

/** One partition per stream (`host#id`, `group#name`), the event's version as sort key. */
export const EVENTS_TABLE: TableSchema = {
  partitionKey: { name: 'stream', type: 'S' },
  sortKey: { name: 'version', type: 'N' },
  globalIndexes: [],
  billingMode: 'PAY_PER_REQUEST',
};

export const HOST_INDEXES = {
  byGroup: 'byGroup',
  byRole: 'byRole',
  byStatus: 'byStatus',
} as const;

/**
 * A status has a handful of values, so a 100k-host fleet changing status would write one or two index
 * partitions: the status index is keyed by `${status}#${shard}` instead, the shard a stable hash of the host id.
 * Listing by status queries every shard, so more shards cost more reads per page; 32 spreads the writes well
 * past one partition's 1000 writes a second.
 */
export const STATUS_SHARDS = 32;

/** The host projection, indexed by the attributes hosts are listed and targeted by. */
export const HOSTS_TABLE: TableSchema = {
  partitionKey: { name: 'hostId', type: 'S' },
  globalIndexes: [
    {
      indexName: HOST_INDEXES.byGroup,
      partitionKey: { name: 'group', type: 'S' },
      sortKey: { name: 'hostId', type: 'S' },
      projection: 'KEYS_ONLY',
    },
    {
      indexName: HOST_INDEXES.byRole,
      partitionKey: { name: 'role', type: 'S' },
      sortKey: { name: 'hostId', type: 'S' },
      projection: 'KEYS_ONLY',
    },
    {
      indexName: HOST_INDEXES.byStatus,
      partitionKey: { name: 'statusShard', type: 'S' },
      sortKey: { name: 'hostId', type: 'S' },
      projection: 'KEYS_ONLY',
    },
  ],
  billingMode: 'PAY_PER_REQUEST',
};

export const DOCUMENT_INDEXES = {
  byKind: 'byKind',
} as const;

/** When a document may go (the predictor's hour documents, shared/scaling/demand-memory.ts). */
export const DOCUMENT_EXPIRY_ATTRIBUTE = 'expiresAt';

/**
 * Versioned documents that are not hosts (groups, rollouts, desired host states, plans, leases): each its own
 * partition (`key` = `${kind}#${id}`), since one partition per kind would take every rollout and plan write of
 * the fleet. Only the kinds that are listed carry `listKind`, so the index stays a few small items and a listing
 * is a Query, never a Scan.
 */
export const DOCUMENTS_TABLE: TableSchema = {
  partitionKey: { name: 'key', type: 'S' },
  globalIndexes: [
    {
      indexName: DOCUMENT_INDEXES.byKind,
      partitionKey: { name: 'listKind', type: 'S' },
      sortKey: { name: 'id', type: 'S' },
      projection: 'ALL',
    },
  ],
  billingMode: 'PAY_PER_REQUEST',
  timeToLiveAttribute: DOCUMENT_EXPIRY_ATTRIBUTE,
};

export interface TableNames {
  events: string;
  hosts: string;
  /** Optional so callers that need only the event log and the hosts need not create it. */
  documents?: string;
}

export function createTableInput(tableName: string, schema: TableSchema): CreateTableCommandInput {
  const attributes = new Map<string, KeyAttribute>();
  const remember = (key: KeyAttribute | undefined) => {
    if (key) attributes.set(key.name, key);
  };
  remember(schema.partitionKey);
  remember(schema.sortKey);
  for (const index of schema.globalIndexes) {
    remember(index.partitionKey);
    remember(index.sortKey);
  }
  const keySchema = (partition: KeyAttribute, sort?: KeyAttribute) => [
    { AttributeName: partition.name, KeyType: 'HASH' as const },
    ...(sort ? [{ AttributeName: sort.name, KeyType: 'RANGE' as const }] : []),
  ];
  return {
    TableName: tableName,
    BillingMode: schema.billingMode,
    AttributeDefinitions: [...attributes.values()].map((key) => ({
      AttributeName: key.name,
      AttributeType: key.type,
    })),
    KeySchema: keySchema(schema.partitionKey, schema.sortKey),
    ...(schema.globalIndexes.length > 0
      ? {
          GlobalSecondaryIndexes: schema.globalIndexes.map((index) => ({
            IndexName: index.indexName,
            KeySchema: keySchema(index.partitionKey, index.sortKey),
            Projection: { ProjectionType: index.projection },
          })),
        }
      : {}),
  };
}

/**
 * Creates the tables that do not exist yet and waits until they are ACTIVE. Idempotent, so local mode can
 * call it on every start against a persisted store.
 */
export async function createTables(
  client: DynamoDBClient,
  names: TableNames,
  options: { timeoutMs?: number } = {},
): Promise<void> {
  const wanted: [string, TableSchema][] = [
    [names.events, EVENTS_TABLE],
    [names.hosts, HOSTS_TABLE],
    ...(names.documents ? [[names.documents, DOCUMENTS_TABLE] as [string, TableSchema]] : []),
  ];
  await Promise.all(
    wanted.map(async ([name, schema]) => {
      try {
        await client.send(new CreateTableCommand(createTableInput(name, schema)));
      } catch (error) {
        if (!(error instanceof ResourceInUseException)) throw error;
      }
      const table = await waitUntilActive(client, name, options.timeoutMs ?? 30_000);
      checkLayout(name, schema, table);
    }),
  );
}

/**
 * A table kept from an earlier version (a persisted local store) may have another key layout: writing to it would
 * fail item by item with an opaque key error, so say so once, naming the table.
 */
function checkLayout(name: string, schema: TableSchema, table: TableDescription | undefined): void {
  const wanted = createTableInput(name, schema);
  const keys = (schemaKeys: readonly { AttributeName?: string; KeyType?: string }[] | undefined) =>
    (schemaKeys ?? []).map((key) => `${key.AttributeName}:${key.KeyType}`).join(',');
  const layout = (
    keySchema: string,
    indexes:
      | readonly { IndexName?: string; KeySchema?: { AttributeName?: string; KeyType?: string }[] }[]
      | undefined,
  ) =>
    [
      keySchema,
      ...(indexes ?? []).map((index) => `${index.IndexName}(${keys(index.KeySchema)})`).sort(),
    ].join(' ');
  const expected = layout(keys(wanted.KeySchema), wanted.GlobalSecondaryIndexes);
  const actual = layout(keys(table?.KeySchema), table?.GlobalSecondaryIndexes);
  if (actual !== expected) {
    throw new Error(
      `table ${name} has the layout "${actual}" but this version of fleetfold needs "${expected}": it was created by an earlier version`,
    );
  }
}

async function waitUntilActive(
  client: DynamoDBClient,
  tableName: string,
  timeoutMs: number,
): Promise<TableDescription | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { Table } = await client.send(new DescribeTableCommand({ TableName: tableName }));
    const indexesActive = (Table?.GlobalSecondaryIndexes ?? []).every(
      (index) => index.IndexStatus === 'ACTIVE',
    );
    if (Table?.TableStatus === 'ACTIVE' && indexesActive) return Table;
    if (Date.now() > deadline) throw new Error(`table ${tableName} not ACTIVE after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
