import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { KMSClient } from '@aws-sdk/client-kms';
import { SFNClient } from '@aws-sdk/client-sfn';
import middy from '@middy/core';
import { KmsSecretCipher } from '../../shared/adapters/kms-cipher.ts';
import { SfnReconcileStarter } from '../../shared/adapters/sfn-reconcile-starter.ts';
import { buildApiDeps } from '../wiring.ts';
import { createApiHandler, loadApiConfig, loadGroupsApiConfig } from './handler.ts';

// Built once per cold start.
const config = loadApiConfig(process.env);
const groupsConfig = loadGroupsApiConfig(process.env);

export const handler = middy(
  createApiHandler(
    buildApiDeps({
      dynamodb: new DynamoDBClient({}),
      eventsTable: config.eventsTable,
      hostsTable: config.hostsTable,
      documentsTable: groupsConfig.documentsTable,
      cipher: new KmsSecretCipher({ client: new KMSClient({}), keyId: config.secretsKeyId }),
      reconcile: new SfnReconcileStarter({
        client: new SFNClient({}),
        stateMachineArn: groupsConfig.reconcileStateMachineArn,
      }),
    }),
  ),
);
