import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { KMSClient } from '@aws-sdk/client-kms';
import middy from '@middy/core';
import { KmsSecretCipher } from '../../shared/adapters/kms-cipher.ts';
import { buildApiDeps } from '../wiring.ts';
import { createApiHandler, loadApiConfig } from './handler.ts';

// Built once per cold start.
const config = loadApiConfig(process.env);

export const handler = middy(
  createApiHandler(
    buildApiDeps({
      dynamodb: new DynamoDBClient({}),
      eventsTable: config.eventsTable,
      hostsTable: config.hostsTable,
      cipher: new KmsSecretCipher({ client: new KMSClient({}), keyId: config.secretsKeyId }),
    }),
  ),
);
