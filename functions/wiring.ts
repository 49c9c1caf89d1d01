import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';
import { DynamoDocumentStore } from '../shared/adapters/dynamo-document-store.ts';
import { DynamoEventStore } from '../shared/adapters/dynamo-event-store.ts';
import { DynamoHostStore } from '../shared/adapters/dynamo-host-store.ts';
import { S3SnapshotStore } from '../shared/adapters/s3-snapshot-store.ts';
import { CachingCipher } from '../shared/caching-cipher.ts';
import type { DocumentStore, ReconcileStarter } from '../shared/groups/ports.ts';
import type { IngestConfig } from '../shared/ingest.ts';
import type { SecretCipher } from '../shared/ports.ts';
import { newHostSecret } from '../shared/signing.ts';
import type { ApiDeps } from './api/deps.ts';
import { randomIdSuffix } from './api/ids.ts';
import { DEFAULT_INGEST_CONFIG } from './ingest/config.ts';
import type { IngestDeps } from './ingest/handler.ts';

/** Builds the handlers' dependencies from SDK clients: shared by Lambda (index.ts), local mode and tests. */
export interface WiringOptions {
  dynamodb: DynamoDBClient;
  s3: S3Client;
  bucket: string;
  eventsTable: string;
  hostsTable: string;
  /** Groups, rollouts, desired states and plans; the api (and the reconcile) need it, the ingest does not. */
  documentsTable?: string;
  cipher: SecretCipher;
  config?: Partial<IngestConfig>;
  /** Called with each DynamoDB response's consumed capacity (benchmarks count WRU/RRU this way). */
  onCapacity?: ConstructorParameters<typeof DynamoEventStore>[0]['onCapacity'];
  onS3Request?: ConstructorParameters<typeof S3SnapshotStore>[0]['onRequest'];
}

function stores(options: Pick<WiringOptions, 'dynamodb' | 'eventsTable' | 'hostsTable' | 'onCapacity'>) {
  const { dynamodb: client, onCapacity } = options;
  return {
    events: new DynamoEventStore({ client, tableName: options.eventsTable, onCapacity }),
    hosts: new DynamoHostStore({ client, tableName: options.hostsTable, onCapacity }),
  };
}

export function buildIngestDeps(options: WiringOptions): IngestDeps {
  return {
    ...stores(options),
    snapshots: new S3SnapshotStore({
      client: options.s3,
      bucket: options.bucket,
      onRequest: options.onS3Request,
    }),
    cipher: new CachingCipher(options.cipher),
    config: { ...DEFAULT_INGEST_CONFIG, ...options.config },
    now: () => new Date(),
  };
}

export function buildDocumentStore(
  options: Pick<WiringOptions, 'dynamodb' | 'onCapacity'> & { documentsTable: string },
): DocumentStore {
  return new DynamoDocumentStore({
    client: options.dynamodb,
    tableName: options.documentsTable,
    onCapacity: options.onCapacity,
  });
}

export type ApiWiringOptions = Omit<WiringOptions, 's3' | 'bucket' | 'config' | 'documentsTable'> & {
  documentsTable: string;
  /** Step Functions in AWS (shared/adapters/sfn-reconcile-starter.ts), in-process locally. */
  reconcile: ReconcileStarter;
};

export function buildApiDeps(options: ApiWiringOptions): ApiDeps {
  return {
    ...stores(options),
    documents: buildDocumentStore(options),
    reconcile: options.reconcile,
    cipher: options.cipher,
    now: () => new Date(),
    newSecret: newHostSecret,
    newId: randomIdSuffix,
  };
}
