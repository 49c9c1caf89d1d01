import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { KMSClient } from '@aws-sdk/client-kms';
import { S3Client } from '@aws-sdk/client-s3';
import { SFNClient } from '@aws-sdk/client-sfn';
import { KmsSecretCipher } from '../../shared/adapters/kms-cipher.ts';
import { SfnReconcileStarter } from '../../shared/adapters/sfn-reconcile-starter.ts';
import { observed, powertools } from '../observability.ts';
import { buildIngestDeps } from '../wiring.ts';
import { loadIngestConfig } from './config.ts';
import { createIngestHandler } from './handler.ts';

// Built once per cold start; every invocation reuses the clients and the decrypted-secret cache.
const config = loadIngestConfig(process.env);
const observability = powertools();

const deps = buildIngestDeps({
  dynamodb: new DynamoDBClient({}),
  s3: new S3Client({}),
  bucket: config.bucket,
  eventsTable: config.eventsTable,
  hostsTable: config.hostsTable,
  ...(config.documentsTable ? { documentsTable: config.documentsTable } : {}),
  cipher: new KmsSecretCipher({ client: new KMSClient({}), keyId: config.secretsKeyId }),
  config: config.ingest,
  telemetry: observability.telemetry,
});

const starter = new SfnReconcileStarter({
  client: new SFNClient({}),
  stateMachineArn: config.reconcileStateMachineArn,
});

// Records are handled concurrently, so each log line names its own message and host (no shared keys).
export const handler = observed(
  createIngestHandler({ ...deps, starter, log: observability.log }),
  observability,
);
