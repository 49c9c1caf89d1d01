import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { KMSClient } from '@aws-sdk/client-kms';
import { SFNClient } from '@aws-sdk/client-sfn';
import { SSMClient } from '@aws-sdk/client-ssm';
import { KmsSecretCipher } from '../../shared/adapters/kms-cipher.ts';
import { SfnReconcileStarter } from '../../shared/adapters/sfn-reconcile-starter.ts';
import { ssmUploadSigningKey } from '../../shared/adapters/ssm-upload-signing-key.ts';
import { uploadGrantIssuer } from '../../shared/cdn-policy.ts';
import { observed, powertools } from '../observability.ts';
import { buildApiDeps } from '../wiring.ts';
import { loadUploadGrantConfig } from './config.ts';
import { createApiHandler, loadApiConfig, loadGroupsApiConfig } from './handler.ts';
import { bundledDocuments } from './published-documents.ts';

// Built once per cold start.
const config = loadApiConfig(process.env);
const groupsConfig = loadGroupsApiConfig(process.env);
const uploadConfig = loadUploadGrantConfig(process.env);
// The key is read on the first registration, not at cold start: reads of hosts never pay for it.
const uploadGrants = uploadConfig
  ? uploadGrantIssuer({
      url: uploadConfig.url,
      lifetimeSeconds: uploadConfig.lifetimeSeconds,
      loadKey: ssmUploadSigningKey({
        ssm: new SSMClient({}),
        parameterName: uploadConfig.signingKeyParameter,
        keyPairId: uploadConfig.keyPairId,
      }),
    })
  : undefined;
const observability = powertools();

export const handler = observed(
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
      telemetry: observability.telemetry,
      // The build writes them beside the bundle (infra/constructs/control-api.ts publishedDocumentFiles).
      published: bundledDocuments(import.meta.dirname),
      ...(uploadGrants ? { uploadGrants } : {}),
    }),
  ),
  observability,
  // API Gateway's request id ties a line to the caller's x-amzn-RequestId; the path names the host or group.
  (event) => ({
    apiRequestId: event.requestContext?.requestId,
    method: event.httpMethod,
    path: event.path,
    ...event.pathParameters,
  }),
);
