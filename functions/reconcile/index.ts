import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EC2Client } from '@aws-sdk/client-ec2';
import { KMSClient } from '@aws-sdk/client-kms';
import { S3Client } from '@aws-sdk/client-s3';
import { SNSClient } from '@aws-sdk/client-sns';
import { SQSClient } from '@aws-sdk/client-sqs';
import { SSMClient } from '@aws-sdk/client-ssm';
import { Ec2Fleet } from '../../shared/adapters/ec2-fleet.ts';
import { KmsSecretCipher } from '../../shared/adapters/kms-cipher.ts';
import { KmsStateSigner } from '../../shared/adapters/kms-state-signer.ts';
import { SnsStatePublisher } from '../../shared/adapters/sns-state-publisher.ts';
import { SsmHostSecrets } from '../../shared/adapters/ssm-host-secrets.ts';
import { bindingInboxes } from '../../shared/groups/inbox-binding.ts';
import { newHostSecret } from '../../shared/signing.ts';
import { observed, powertools } from '../observability.ts';
import { buildReconcileDeps } from '../wiring.ts';
import { loadReconcileConfig } from './config.ts';
import { createReconcileHandler, runKeys } from './handler.ts';

// Built once per cold start; every step of every run reuses the clients.
const config = loadReconcileConfig(process.env);
const observability = powertools();
const s3 = new S3Client({});
const sns = new SNSClient({});
const kms = new KMSClient({});
const signer = new KmsStateSigner({ client: kms, keyArn: config.signingKeyArn });
// New hosts get the key in their boot script; fetched once per cold start, during the init phase.
const controlPublicKeyPem = await signer.publicKeyPem();
const publisher = new SnsStatePublisher({
  sns,
  sqs: new SQSClient({}),
  s3,
  bucket: config.bucket,
  signer,
  topicArns: config.stateTopicArns,
  instanceArnPrefix: config.hostInstanceArnPrefix,
});

export const handler = observed(
  createReconcileHandler(
    buildReconcileDeps({
      dynamodb: new DynamoDBClient({}),
      s3,
      bucket: config.bucket,
      eventsTable: config.eventsTable,
      hostsTable: config.hostsTable,
      documentsTable: config.documentsTable,
      fleet: new Ec2Fleet({
        client: new EC2Client({}),
        bucket: config.bucket,
        agentArtifactUrl: config.agentArtifactUrl,
        controlPublicKeyPem,
        subnetIds: config.subnetIds,
        securityGroupIds: config.securityGroupIds,
        ...(config.instanceProfile ? { instanceProfile: config.instanceProfile } : {}),
        ...(config.defaultImage ? { defaultImage: config.defaultImage } : {}),
        ...(config.stackName ? { stack: config.stackName } : {}),
      }),
      provisioner: ({ events, hosts }) =>
        bindingInboxes(
          new SsmHostSecrets({
            events,
            hosts,
            cipher: new KmsSecretCipher({ client: kms, keyId: config.secretsKeyId }),
            ssm: new SSMClient({}),
            prefix: config.secretParameterPrefix,
            keyId: config.secretParameterKeyArn,
            instanceArnPrefix: config.hostInstanceArnPrefix,
            newSecret: newHostSecret,
            now: () => new Date(),
          }),
          publisher,
        ),
      publisher,
      settings: {
        pollSeconds: config.pollSeconds,
        checkWindowMs: config.checkWindowMs,
        heartbeatCoalesceSeconds: config.heartbeatCoalesceSeconds,
      },
      ...(config.alarmTopicArn ? { alarmTopic: { sns, topicArn: config.alarmTopicArn } } : {}),
      telemetry: observability.telemetry,
    }),
  ),
  observability,
  runKeys,
);
