import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { KMSClient } from '@aws-sdk/client-kms';
import { S3Client } from '@aws-sdk/client-s3';
import { SFNClient } from '@aws-sdk/client-sfn';
import middy from '@middy/core';
import { KmsSecretCipher } from '../../shared/adapters/kms-cipher.ts';
import { SfnReconcileStarter } from '../../shared/adapters/sfn-reconcile-starter.ts';
import { buildIngestDeps } from '../wiring.ts';
import { loadIngestConfig } from './config.ts';
import { emfLine } from './emf.ts';
import { createIngestHandler } from './handler.ts';

// Built once per cold start; every invocation reuses the clients and the decrypted-secret cache.
const config = loadIngestConfig(process.env);

const deps = buildIngestDeps({
  dynamodb: new DynamoDBClient({}),
  s3: new S3Client({}),
  bucket: config.bucket,
  eventsTable: config.eventsTable,
  hostsTable: config.hostsTable,
  cipher: new KmsSecretCipher({ client: new KMSClient({}), keyId: config.secretsKeyId }),
  config: config.ingest,
});

const starter = new SfnReconcileStarter({
  client: new SFNClient({}),
  stateMachineArn: config.reconcileStateMachineArn,
});

export const handler = middy(
  createIngestHandler({
    ...deps,
    starter,
    report: (summary) => console.log(emfLine(summary, Date.now())),
  }),
);
