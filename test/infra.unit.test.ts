import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { App, type CfnElement, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import type * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import type * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sns from 'aws-cdk-lib/aws-sns';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROUTE_TABLE } from '../functions/api/route-table.ts';
import { buildApp } from '../infra/build-app.ts';
import {
  AGENT_ARTIFACT_KEY,
  AGENT_ARTIFACT_PREFIX,
  DEFAULT_HOST_IMAGE_PARAMETER,
  type FleetfoldStack,
  INGEST_SETTINGS,
} from '../infra/stacks/fleetfold-stack.ts';
import { DOCUMENTS_TABLE, EVENTS_TABLE, HOSTS_TABLE } from '../shared/adapters/table-schemas.ts';

/*
 * One synthesis (with the cdk-nag plugin registered, exactly as `cdk synth` runs it) feeds every assertion.
 * If cdk-nag finds anything unacknowledged, synthesis itself throws and every test here fails.
 */
let outdir: string;
let app: App;
let stack: FleetfoldStack;
let template: Template;

beforeAll(() => {
  outdir = mkdtempSync(path.join(tmpdir(), 'fleetfold-cdk-'));
  ({ app, stack } = buildApp({ outdir }));
  template = Template.fromStack(stack);
}, 120_000);

afterAll(() => {
  if (outdir) rmSync(outdir, { recursive: true, force: true });
});

function logicalId(construct: IConstruct): string {
  return Stack.of(construct).getLogicalId(construct.node.defaultChild as CfnElement);
}

function arnOf(construct: IConstruct) {
  return { 'Fn::GetAtt': [logicalId(construct), 'Arn'] };
}

function objectsArn(construct: IConstruct, pattern: string) {
  return { 'Fn::Join': ['', [arnOf(construct), `/${pattern}`]] };
}

type Statement = {
  Sid?: string;
  Action: string | string[];
  Effect: string;
  Resource: unknown;
  Principal?: unknown;
  Condition?: unknown;
};

function policyStatements(roleConstruct: IConstruct): Statement[] {
  const policies = template.findResources('AWS::IAM::Policy', {
    Properties: { Roles: [{ Ref: logicalId(roleConstruct) }] },
  });
  return Object.values(policies).flatMap(
    (policy) =>
      (policy as { Properties: { PolicyDocument: { Statement: Statement[] } } }).Properties.PolicyDocument
        .Statement,
  );
}

/** `arn:<partition>:<service>:<region>:<account>:<resource>` as CloudFormation spells it. */
function regionalArn(service: string, resource: string) {
  return {
    'Fn::Join': [
      '',
      [
        'arn:',
        { Ref: 'AWS::Partition' },
        `:${service}:`,
        { Ref: 'AWS::Region' },
        ':',
        { Ref: 'AWS::AccountId' },
        `:${resource}`,
      ],
    ],
  };
}

const ssmService = { 'Fn::Join': ['', ['ssm.', { Ref: 'AWS::Region' }, '.amazonaws.com']] };

function encodedKey(of: FleetfoldStack): string {
  const cfn = of.uploads.publicKey.node.defaultChild as cloudfront.CfnPublicKey;
  return (of.resolve(cfn.publicKeyConfig) as { encodedKey: string }).encodedKey;
}

const actionsOf = (statements: Statement[]) => statements.flatMap((s) => [s.Action].flat());

describe('snapshot bucket', () => {
  it('blocks public access, versions objects, encrypts with S3 keys and logs access', () => {
    template.hasResource('AWS::S3::Bucket', {
      DeletionPolicy: 'Retain',
      Properties: {
        PublicAccessBlockConfiguration: {
          BlockPublicAcls: true,
          BlockPublicPolicy: true,
          IgnorePublicAcls: true,
          RestrictPublicBuckets: true,
        },
        VersioningConfiguration: { Status: 'Enabled' },
        BucketEncryption: {
          ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
        },
        LoggingConfiguration: { DestinationBucketName: { Ref: logicalId(stack.snapshots.logBucket) } },
      },
    });
  });

  it('expires snapshots and noncurrent versions after 30 days and rejected objects after 90', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      VersioningConfiguration: { Status: 'Enabled' },
      LifecycleConfiguration: {
        Rules: Match.arrayWith([
          Match.objectLike({ NoncurrentVersionExpiration: { NoncurrentDays: 30 }, Status: 'Enabled' }),
          Match.objectLike({ Prefix: 'snapshots/', ExpirationInDays: 30, Status: 'Enabled' }),
          Match.objectLike({ Prefix: 'rejected/', ExpirationInDays: 90, Status: 'Enabled' }),
        ]),
      },
    });
  });

  it('denies every request made without TLS', () => {
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: logicalId(stack.snapshots.bucket) },
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Deny',
            Action: 's3:*',
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ]),
      },
    });
  });

  it('announces new snapshots/**.json objects on the ingest queue', () => {
    const notifications = Object.values(template.findResources('Custom::S3BucketNotifications')) as {
      Properties: { BucketName: unknown; NotificationConfiguration: { QueueConfigurations: unknown[] } };
    }[];
    expect(notifications).toHaveLength(1);
    expect(notifications[0]?.Properties.BucketName).toEqual({ Ref: logicalId(stack.snapshots.bucket) });
    const [queueConfiguration, ...others] =
      notifications[0]?.Properties.NotificationConfiguration.QueueConfigurations ?? [];
    expect(others).toEqual([]);
    expect(queueConfiguration).toEqual({
      Events: ['s3:ObjectCreated:*'],
      Filter: {
        Key: {
          FilterRules: expect.arrayContaining([
            { Name: 'prefix', Value: 'snapshots/' },
            { Name: 'suffix', Value: '.json' },
          ]),
        },
      },
      QueueArn: arnOf(stack.ingestQueue.queue),
    });
  });
});

describe('ingest queue', () => {
  it('redrives to an encrypted dead-letter queue after 5 receives', () => {
    template.hasResourceProperties('AWS::SQS::Queue', {
      SqsManagedSseEnabled: true,
      RedrivePolicy: { deadLetterTargetArn: arnOf(stack.ingestQueue.deadLetterQueue), maxReceiveCount: 5 },
    });
    const dlq = template.toJSON().Resources[logicalId(stack.ingestQueue.deadLetterQueue)];
    expect(dlq.Properties.SqsManagedSseEnabled).toBe(true);
  });

  it('keeps messages invisible for at least six ingest timeouts', () => {
    const timeout = template.toJSON().Resources[logicalId(stack.ingest.function)].Properties.Timeout;
    const queue = template.toJSON().Resources[logicalId(stack.ingestQueue.queue)];
    expect(queue.Properties.VisibilityTimeout).toBeGreaterThanOrEqual(6 * timeout);
  });

  it('refuses non-TLS requests on both queues', () => {
    for (const queue of [stack.ingestQueue.queue, stack.ingestQueue.deadLetterQueue]) {
      template.hasResourceProperties('AWS::SQS::QueuePolicy', {
        Queues: [{ Ref: logicalId(queue) }],
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
          ]),
        },
      });
    }
  });

  it('feeds the ingest function in batches of 10 with partial-batch failures', () => {
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: arnOf(stack.ingestQueue.queue),
      FunctionName: { Ref: logicalId(stack.ingest.function) },
      BatchSize: 10,
      MaximumBatchingWindowInSeconds: Match.anyValue(),
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
    const [mapping] = Object.values(template.findResources('AWS::Lambda::EventSourceMapping'));
    const window = (mapping as { Properties: { MaximumBatchingWindowInSeconds: number } }).Properties
      .MaximumBatchingWindowInSeconds;
    expect(window).toBeGreaterThanOrEqual(1);
    expect(window).toBeLessThanOrEqual(5);
  });
});

describe('tables', () => {
  it('keys the event log by stream and version, with PITR and on-demand billing, retained', () => {
    expect(EVENTS_TABLE.partitionKey).toEqual({ name: 'stream', type: 'S' });
    template.hasResource('AWS::DynamoDB::Table', {
      DeletionPolicy: 'Retain',
      Properties: {
        KeySchema: [
          { AttributeName: 'stream', KeyType: 'HASH' },
          { AttributeName: 'version', KeyType: 'RANGE' },
        ],
        AttributeDefinitions: Match.arrayWith([
          { AttributeName: 'stream', AttributeType: 'S' },
          { AttributeName: 'version', AttributeType: 'N' },
        ]),
        BillingMode: 'PAY_PER_REQUEST',
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        SSESpecification: { SSEEnabled: true },
      },
    });
  });

  it('indexes hosts by group, role and status with keys-only projections, as the shared schema says', () => {
    const expectedIndexes = HOSTS_TABLE.globalIndexes.map((index) => ({
      IndexName: index.indexName,
      KeySchema: [
        { AttributeName: index.partitionKey.name, KeyType: 'HASH' },
        { AttributeName: index.sortKey.name, KeyType: 'RANGE' },
      ],
      Projection: { ProjectionType: 'KEYS_ONLY' },
    }));
    expect(expectedIndexes.map((index) => index.IndexName)).toEqual(['byGroup', 'byRole', 'byStatus']);
    template.hasResource('AWS::DynamoDB::Table', {
      DeletionPolicy: 'Retain',
      Properties: {
        KeySchema: [{ AttributeName: 'hostId', KeyType: 'HASH' }],
        GlobalSecondaryIndexes: expectedIndexes,
        BillingMode: 'PAY_PER_REQUEST',
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      },
    });
  });

  it('write-shards the status index: its partition key is the status with a shard of the host id', () => {
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: [{ AttributeName: 'hostId', KeyType: 'HASH' }],
      AttributeDefinitions: Match.arrayWith([{ AttributeName: 'statusShard', AttributeType: 'S' }]),
      GlobalSecondaryIndexes: Match.arrayWith([
        {
          IndexName: 'byStatus',
          KeySchema: [
            { AttributeName: 'statusShard', KeyType: 'HASH' },
            { AttributeName: 'hostId', KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'KEYS_ONLY' },
        },
      ]),
    });
  });

  it('keys documents one partition each and lists them from a sparse index projecting whole items', () => {
    expect(DOCUMENTS_TABLE.sortKey).toBeUndefined();
    template.hasResource('AWS::DynamoDB::Table', {
      DeletionPolicy: 'Retain',
      Properties: {
        KeySchema: [{ AttributeName: 'key', KeyType: 'HASH' }],
        AttributeDefinitions: [
          { AttributeName: 'key', AttributeType: 'S' },
          { AttributeName: 'listKind', AttributeType: 'S' },
          { AttributeName: 'id', AttributeType: 'S' },
        ],
        GlobalSecondaryIndexes: [
          {
            IndexName: 'byKind',
            KeySchema: [
              { AttributeName: 'listKind', KeyType: 'HASH' },
              { AttributeName: 'id', KeyType: 'RANGE' },
            ],
            Projection: { ProjectionType: 'ALL' },
          },
        ],
        BillingMode: 'PAY_PER_REQUEST',
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        SSESpecification: { SSEEnabled: true },
        // The autoscaler's hour documents (scaling-demand) go once past their lookback.
        TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
      },
    });
  });
});

describe('host secrets key', () => {
  it('is a retained symmetric key with rotation', () => {
    template.hasResource('AWS::KMS::Key', {
      DeletionPolicy: 'Retain',
      Properties: { EnableKeyRotation: true, KeySpec: 'SYMMETRIC_DEFAULT', KeyUsage: 'ENCRYPT_DECRYPT' },
    });
  });
});

describe('functions', () => {
  const common = () => ({
    EVENTS_TABLE: { Ref: logicalId(stack.tables.events) },
    HOSTS_TABLE: { Ref: logicalId(stack.tables.hosts) },
    SECRETS_KEY_ID: arnOf(stack.secretsKey.key),
    NODE_OPTIONS: '--enable-source-maps',
    POWERTOOLS_SERVICE_NAME: 'fleetfold',
    POWERTOOLS_METRICS_NAMESPACE: 'fleetfold',
  });

  it('runs ingest on arm64 Node 24 with its settings and resource names', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Architectures: ['arm64'],
      Runtime: 'nodejs24.x',
      MemorySize: 256,
      Timeout: 30,
      Handler: 'index.handler',
      Environment: {
        Variables: {
          ...common(),
          BUCKET: { Ref: logicalId(stack.snapshots.bucket) },
          CLOCK_SKEW_SECONDS: '300',
          MAX_SNAPSHOT_BYTES: '262144',
          HEARTBEAT_COALESCE_SECONDS: '60',
          LOAD_BANDS: '0.5,0.8,0.95',
          SESSION_BANDS: '1,50,200',
        },
      },
    });
  });

  it('runs api on arm64 Node 24 with only the table and key names', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Architectures: ['arm64'],
      Runtime: 'nodejs24.x',
      MemorySize: 256,
      Timeout: 10,
      Environment: { Variables: common() },
    });
  });

  it('logs each function to its own log group kept for a month', () => {
    const resources = template.toJSON().Resources;
    for (const fn of [stack.ingest, stack.api]) {
      expect(resources[logicalId(fn.function)].Properties.LoggingConfig).toEqual({
        LogGroup: { Ref: logicalId(fn.logGroup) },
        LogFormat: 'JSON',
        ApplicationLogLevel: 'INFO',
        SystemLogLevel: 'WARN',
      });
      expect(resources[logicalId(fn.logGroup)].Properties.RetentionInDays).toBe(30);
    }
  });

  it('lets ingest only read and delete snapshots, write rejected objects and decrypt', () => {
    const statements = policyStatements(stack.ingest.role);
    const bucket = stack.snapshots.bucket;
    const s3Statements = statements.filter((s) => actionsOf([s]).some((a) => a.startsWith('s3:')));
    expect(s3Statements).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ Action: 's3:GetObject', Resource: objectsArn(bucket, 'snapshots/*') }),
        expect.objectContaining({ Action: 's3:DeleteObject', Resource: objectsArn(bucket, 'snapshots/*') }),
        expect.objectContaining({ Action: 's3:PutObject', Resource: objectsArn(bucket, 'rejected/*') }),
        // Only so that a missing snapshot reads as 404 (already quarantined), not 403.
        expect.objectContaining({
          Action: 's3:ListBucket',
          Condition: { StringLike: { 's3:prefix': ['snapshots/*'] } },
        }),
      ]),
    );
    expect(s3Statements).toHaveLength(4);
    const actions = actionsOf(statements);
    expect(actions).toContain('kms:Decrypt');
    expect(actions).not.toContain('kms:Encrypt');
    expect(actions).toEqual(expect.arrayContaining(['sqs:ReceiveMessage', 'sqs:DeleteMessage']));
    expect(actions.filter((a) => a.includes('*'))).toEqual([]);
  });

  it('lets api encrypt but never decrypt secrets, and never touch the bucket', () => {
    const actions = actionsOf(policyStatements(stack.api.role));
    expect(actions).toContain('kms:Encrypt');
    expect(actions).not.toContain('kms:Decrypt');
    expect(actions.filter((a) => a.startsWith('s3:'))).toEqual([]);
    expect(actions).toEqual(
      expect.arrayContaining(['dynamodb:PutItem', 'dynamodb:Query', 'dynamodb:GetItem']),
    );
  });
});

describe('control API', () => {
  it('requires IAM auth and request validation on every method', () => {
    const methods = Object.values(template.findResources('AWS::ApiGateway::Method')) as {
      Properties: { AuthorizationType: string; RequestValidatorId: unknown };
    }[];
    expect(methods).toHaveLength(ROUTE_TABLE.length);
    for (const method of methods) {
      expect(method.Properties.AuthorizationType).toBe('AWS_IAM');
      expect(method.Properties.RequestValidatorId).toBeDefined();
    }
    template.hasResourceProperties('AWS::ApiGateway::RequestValidator', {
      ValidateRequestBody: true,
      ValidateRequestParameters: true,
    });
  });

  it('routes every resource of the route table to the api function', () => {
    // test/openapi.test.ts checks each route has its own method; here the whole stack's resources match the table.
    const paths = Object.values(template.findResources('AWS::ApiGateway::Resource')).map(
      (resource) => (resource as { Properties: { PathPart: string } }).Properties.PathPart,
    );
    const prefixes = new Set(
      ROUTE_TABLE.flatMap((route) => {
        const parts = route.path.split('/').filter(Boolean);
        return parts.map((_, index) => parts.slice(0, index + 1).join('/'));
      }),
    );
    expect(paths.sort()).toEqual([...prefixes].map((prefix) => prefix.split('/').at(-1)).sort());
    template.allResourcesProperties('AWS::ApiGateway::Method', {
      Integration: {
        Type: 'AWS_PROXY',
        Uri: Match.objectLike({
          'Fn::Join': ['', Match.arrayWith([arnOf(stack.api.function)])],
        }),
      },
    });
  });

  it('validates POST /hosts bodies against the RegisterHost schema', () => {
    template.hasResourceProperties('AWS::ApiGateway::Model', {
      ContentType: 'application/json',
      Schema: {
        $schema: 'http://json-schema.org/draft-04/schema#',
        type: 'object',
        required: ['group', 'hostType', 'roles'],
        additionalProperties: false,
        properties: Match.objectLike({
          hostId: Match.objectLike({ type: 'string' }),
          roles: Match.objectLike({ type: 'array', minItems: 1 }),
        }),
      },
    });
    template.hasResourceProperties('AWS::ApiGateway::Method', {
      HttpMethod: 'POST',
      RequestModels: { 'application/json': { Ref: Match.stringLikeRegexp('RegisterHostModel') } },
    });
  });

  it('writes JSON access logs, traces and logs every method on the stage', () => {
    const [stage] = Object.values(template.findResources('AWS::ApiGateway::Stage')) as {
      Properties: {
        AccessLogSetting: { DestinationArn: unknown; Format: string };
        TracingEnabled: boolean;
        MethodSettings: unknown[];
      };
    }[];
    expect(stage?.Properties.AccessLogSetting.DestinationArn).toEqual(arnOf(stack.controlApi.accessLogs));
    expect(JSON.parse(stage?.Properties.AccessLogSetting.Format ?? '')).toMatchObject({
      requestId: '$context.requestId',
      status: '$context.status',
    });
    expect(stage?.Properties.TracingEnabled).toBe(true);
    expect(stage?.Properties.MethodSettings).toEqual([
      expect.objectContaining({ HttpMethod: '*', ResourcePath: '/*', LoggingLevel: 'INFO' }),
    ]);
  });
});

describe('CloudFront upload path', () => {
  it('reaches the bucket through an Origin Access Control that signs every request', () => {
    template.hasResourceProperties('AWS::CloudFront::OriginAccessControl', {
      OriginAccessControlConfig: {
        OriginAccessControlOriginType: 's3',
        SigningBehavior: 'always',
        SigningProtocol: 'sigv4',
      },
    });
    template.hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: {
        Origins: [
          Match.objectLike({
            OriginAccessControlId: { 'Fn::GetAtt': [Match.stringLikeRegexp('OriginAccessControl'), 'Id'] },
          }),
        ],
      },
    });
  });

  it('accepts PUT over HTTPS only from viewers signed by the trusted key group', () => {
    template.hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: {
        DefaultCacheBehavior: Match.objectLike({
          AllowedMethods: Match.arrayWith(['PUT']),
          ViewerProtocolPolicy: 'https-only',
          TrustedKeyGroups: [{ Ref: logicalId(stack.uploads.keyGroup) }],
        }),
        Logging: Match.objectLike({ Prefix: 'cloudfront/' }),
      },
    });
    template.hasResourceProperties('AWS::CloudFront::KeyGroup', {
      KeyGroupConfig: { Items: [{ Ref: logicalId(stack.uploads.publicKey) }] },
    });
    template.hasResourceProperties('AWS::CloudFront::PublicKey', {
      PublicKeyConfig: { EncodedKey: Match.stringLikeRegexp('BEGIN PUBLIC KEY') },
    });
  });

  it('grants CloudFront nothing but PutObject under snapshots/', () => {
    const [policy] = Object.values(
      template.findResources('AWS::S3::BucketPolicy', {
        Properties: { Bucket: { Ref: logicalId(stack.snapshots.bucket) } },
      }),
    ) as { Properties: { PolicyDocument: { Statement: Statement[] } } }[];
    const cloudFront = policy?.Properties.PolicyDocument.Statement.filter(
      (s) => JSON.stringify(s.Principal) === JSON.stringify({ Service: 'cloudfront.amazonaws.com' }),
    );
    expect(cloudFront).toEqual([
      expect.objectContaining({
        Effect: 'Allow',
        Action: 's3:PutObject',
        Resource: objectsArn(stack.snapshots.bucket, 'snapshots/*'),
      }),
    ]);
  });

  it('trusts the committed public key unless the uploadPublicKeyPem context names another', () => {
    const committed = readFileSync(
      path.join(import.meta.dirname, '..', 'infra', 'keys', 'upload-public.pem'),
      'utf8',
    );
    expect(encodedKey(stack)).toBe(committed);
    expect(committed).not.toMatch(/PRIVATE KEY/);

    const pem =
      '-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAoperator\n-----END PUBLIC KEY-----\n';
    const { stack: other } = buildApp({ context: { uploadPublicKeyPem: pem } });
    expect(encodedKey(other)).toBe(pem);
  });
});

describe('host instance role', () => {
  it('may put snapshots, read inboxes, large states, the agent and only its own secret, nothing else', () => {
    const bucket = stack.snapshots.bucket;
    const statements = policyStatements(stack.hostRole.role);
    expect(statements).toEqual([
      { Action: 's3:PutObject', Effect: 'Allow', Resource: objectsArn(bucket, 'snapshots/*') },
      expect.objectContaining({
        Action: [
          'sqs:ReceiveMessage',
          'sqs:DeleteMessage',
          'sqs:ChangeMessageVisibility',
          'sqs:GetQueueUrl',
          'sqs:GetQueueAttributes',
        ],
        Resource: regionalArn('sqs', 'fleetfold-inbox-*'),
      }),
      expect.objectContaining({ Action: 's3:GetObject', Resource: objectsArn(bucket, 'states/*') }),
      expect.objectContaining({ Sid: 'ReadOwnSecretParameter' }),
      expect.objectContaining({ Sid: 'DecryptOwnSecretParameter' }),
      {
        Sid: 'ReadAgentArtifacts',
        Action: 's3:GetObject',
        Effect: 'Allow',
        Resource: objectsArn(bucket, 'agent/*'),
      },
    ]);
    template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: {
        Statement: [Match.objectLike({ Principal: { Service: 'ec2.amazonaws.com' } })],
      },
      ManagedPolicyArns: Match.absent(),
    });
    template.hasResourceProperties('AWS::IAM::InstanceProfile', {
      Roles: [{ Ref: logicalId(stack.hostRole.role) }],
    });
  });

  it('reads a secret parameter only when its instance-arn tag names the calling instance', () => {
    const read = policyStatements(stack.hostRole.role).find((s) => s.Sid === 'ReadOwnSecretParameter');
    expect(read).toEqual({
      Sid: 'ReadOwnSecretParameter',
      Action: 'ssm:GetParameter',
      Effect: 'Allow',
      Resource: regionalArn('ssm', 'parameter/fleetfold/hosts/*'),
      Condition: {
        // biome-ignore lint/suspicious/noTemplateCurlyInString: an IAM policy variable
        StringEquals: { 'ssm:resourceTag/fleetfold:instance-arn': '${ec2:SourceInstanceARN}' },
      },
    });
  });

  it('decrypts with the parameter key only through SSM, for host-secret parameters', () => {
    const decrypt = policyStatements(stack.hostRole.role).find((s) => s.Sid === 'DecryptOwnSecretParameter');
    expect(decrypt).toEqual({
      Sid: 'DecryptOwnSecretParameter',
      Action: 'kms:Decrypt',
      Effect: 'Allow',
      Resource: arnOf(stack.hostSecrets.key),
      Condition: {
        StringEquals: { 'kms:ViaService': ssmService },
        StringLike: {
          'kms:EncryptionContext:PARAMETER_ARN': regionalArn('ssm', 'parameter/fleetfold/hosts/*'),
        },
      },
    });
    expect(actionsOf(policyStatements(stack.hostRole.role))).not.toContain('ssm:PutParameter');
  });
});

describe('desired-state fan-out', () => {
  it('creates one encrypted, TLS-only state topic by default (beside the alarm topic)', () => {
    template.resourceCountIs('AWS::SNS::Topic', 2);
    template.hasResourceProperties('AWS::SNS::Topic', {
      TopicName: 'fleetfold-states',
      KmsMasterKeyId: Match.anyValue(),
    });
  });

  it('signs states with a retained ECC P-256 key', () => {
    template.hasResource('AWS::KMS::Key', {
      DeletionPolicy: 'Retain',
      Properties: { KeySpec: 'ECC_NIST_P256', KeyUsage: 'SIGN_VERIFY' },
    });
  });
});

describe('alarm topic', () => {
  const topicRef = () => ({ Ref: logicalId(stack.alarms.topic) });

  it('creates an encrypted alarm topic and outputs its ARN', () => {
    template.hasResourceProperties('AWS::SNS::Topic', {
      TopicName: 'fleetfold-alarms',
      KmsMasterKeyId: Match.anyValue(),
    });
    template.hasOutput('AlarmTopicArn', { Value: topicRef() });
    template.resourceCountIs('AWS::SNS::Subscription', 0);
  });

  it('tells the reconcile and the api the topic, and lets both publish to it and nothing else of it', () => {
    for (const fn of [stack.reconcile, stack.api]) {
      const variables = template.toJSON().Resources[logicalId(fn.function)].Properties.Environment
        .Variables as Record<string, unknown>;
      expect(variables.ALARM_TOPIC_ARN).toEqual(topicRef());
      const onTopic = policyStatements(fn.role).filter(
        (statement) => JSON.stringify(statement.Resource) === JSON.stringify(topicRef()),
      );
      expect(onTopic).toEqual([expect.objectContaining({ Action: 'sns:Publish', Effect: 'Allow' })]);
    }
  });

  it('subscribes the alarmEmail context value by e-mail', () => {
    const withEmail = buildApp({
      context: { 'aws:cdk:bundling-stacks': [], alarmEmail: 'ops@example.com' },
      outdir: mkdtempSync(path.join(outdir, 'alarm-email-')),
    }).stack;
    Template.fromStack(withEmail).hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'ops@example.com',
      TopicArn: { Ref: logicalId(withEmail.alarms.topic) },
    });
  });
});

describe('host secret parameters', () => {
  it('encrypts them with a retained key of their own, with rotation', () => {
    const key = template.toJSON().Resources[logicalId(stack.hostSecrets.key)];
    expect(key.DeletionPolicy).toBe('Retain');
    expect(key.Properties).toMatchObject({ EnableKeyRotation: true });
    expect(logicalId(stack.hostSecrets.key)).not.toBe(logicalId(stack.secretsKey.key));
  });

  it('lets the reconcile write and tag host parameters and encrypt only through SSM', () => {
    const statements = policyStatements(stack.reconcile.role);
    expect(statements).toEqual(
      expect.arrayContaining([
        {
          Sid: 'ManageHostSecretParameters',
          Action: ['ssm:PutParameter', 'ssm:AddTagsToResource', 'ssm:DeleteParameter'],
          Effect: 'Allow',
          Resource: regionalArn('ssm', 'parameter/fleetfold/hosts/*'),
        },
        {
          Sid: 'EncryptHostSecretParameters',
          Action: 'kms:Encrypt',
          Effect: 'Allow',
          Resource: arnOf(stack.hostSecrets.key),
          Condition: { StringEquals: { 'kms:ViaService': ssmService } },
        },
      ]),
    );
    expect(actionsOf(statements)).not.toContain('ssm:GetParameter');
  });
});

describe('reconcile function', () => {
  it('is told every resource it launches, signs and publishes with', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Description: Match.stringLikeRegexp('^Plans, applies'),
      Environment: {
        Variables: Match.objectLike({
          HOSTS_TABLE: { Ref: logicalId(stack.tables.hosts) },
          SECRETS_KEY_ID: arnOf(stack.secretsKey.key),
          STATE_TOPIC_ARNS: { Ref: logicalId(stack.fanout.topics[0] as IConstruct) },
          SIGNING_KEY_ARN: arnOf(stack.fanout.signingKey),
          SECRET_PARAMETER_PREFIX: '/fleetfold/hosts/',
          SECRET_PARAMETER_KEY_ARN: arnOf(stack.hostSecrets.key),
          HOST_INSTANCE_ARN_PREFIX: regionalArn('ec2', 'instance/'),
          FLEET_STACK_TAG: 'Fleetfold',
          // Allowed for before a host counts as lost: the window the ingest coalesces heartbeats by.
          HEARTBEAT_COALESCE_SECONDS: INGEST_SETTINGS.HEARTBEAT_COALESCE_SECONDS,
          HOST_INSTANCE_PROFILE_ARN: arnOf(stack.hostRole.instanceProfile),
          AGENT_ARTIFACT_URL: {
            'Fn::Join': [
              '',
              ['s3://', { Ref: logicalId(stack.snapshots.bucket) }, '/agent/fleetfold-agent.tar.gz'],
            ],
          },
        }),
      },
    });
  });

  it('launches nothing into subnets or security groups the operator did not name, on current AL2023 arm64', () => {
    const variables = template.toJSON().Resources[logicalId(stack.reconcile.function)].Properties.Environment
      .Variables as Record<string, unknown>;
    expect(variables).not.toHaveProperty('SUBNET_IDS');
    expect(variables).not.toHaveProperty('SECURITY_GROUP_IDS');
    // The public SSM parameter of the latest Amazon Linux 2023 arm64 AMI, resolved at each deploy.
    const image = (variables.DEFAULT_IMAGE as { Ref: string }).Ref;
    expect(template.toJSON().Parameters[image]).toEqual({
      Type: 'AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>',
      Default: DEFAULT_HOST_IMAGE_PARAMETER,
    });
  });

  it('uploads the agent artifact, built at synth, to the default agentArtifactUrl', () => {
    const [deployment, ...others] = Object.values(template.findResources('Custom::CDKBucketDeployment'));
    expect(others).toEqual([]);
    expect(deployment?.Properties).toMatchObject({
      DestinationBucketName: { Ref: logicalId(stack.snapshots.bucket) },
      DestinationBucketKeyPrefix: AGENT_ARTIFACT_PREFIX,
      Prune: false,
    });
    // The zip CDK uploads holds the tar.gz alone; the deployment extracts it to agent/fleetfold-agent.tar.gz.
    const [zip] = (deployment?.Properties.SourceObjectKeys ?? []) as string[];
    const staged = path.join(outdir, `asset.${zip?.replace(/\.zip$/, '')}`);
    expect(readdirSync(staged)).toEqual([path.basename(AGENT_ARTIFACT_KEY)]);
    expect(stack.agentArtifact?.artifact?.bytes).toBe(
      statSync(path.join(staged, 'fleetfold-agent.tar.gz')).size,
    );
  });

  it('may pass only the host role, only to EC2, and encrypt and decrypt host secrets', () => {
    const statements = policyStatements(stack.reconcile.role);
    const pass = statements.filter((s) => actionsOf([s]).includes('iam:PassRole'));
    expect(pass).toEqual([
      expect.objectContaining({
        Resource: arnOf(stack.hostRole.role),
        Condition: { StringEquals: { 'iam:PassedToService': 'ec2.amazonaws.com' } },
      }),
    ]);
    const actions = actionsOf(statements);
    expect(actions).toEqual(
      expect.arrayContaining([
        'kms:Encrypt',
        'kms:Decrypt',
        'kms:Sign',
        'sns:Publish',
        'sqs:CreateQueue',
        'ec2:RunInstances',
        'dynamodb:PutItem',
      ]),
    );
  });

  it('writes plans and states to their own prefixes, which expire after 30 and 7 days', () => {
    const bucket = stack.snapshots.bucket;
    const puts = policyStatements(stack.reconcile.role).filter((s) =>
      actionsOf([s]).includes('s3:PutObject'),
    );
    expect(puts.map((s) => s.Resource)).toEqual(
      expect.arrayContaining([objectsArn(bucket, 'plans/*'), objectsArn(bucket, 'states/*')]),
    );
    expect(puts).toHaveLength(2);
    template.hasResourceProperties('AWS::S3::Bucket', {
      LifecycleConfiguration: {
        Rules: Match.arrayWith([
          Match.objectLike({ Prefix: 'states/', ExpirationInDays: 7, Status: 'Enabled' }),
          Match.objectLike({ Prefix: 'plans/', ExpirationInDays: 30, Status: 'Enabled' }),
        ]),
      },
    });
  });
});

describe('deploy-time context', () => {
  // Built, not synthesized: resolving the constructs is enough, and a second synthesis would double this file's time.
  const built = (context: Record<string, unknown>) =>
    buildApp({
      context: { 'aws:cdk:bundling-stacks': [], ...context },
      outdir: mkdtempSync(path.join(outdir, 'context-')),
    }).stack;
  const environmentOf = (of: FleetfoldStack) =>
    (
      of.resolve((of.reconcile.function.node.defaultChild as lambda.CfnFunction).environment) as {
        variables: Record<string, unknown>;
      }
    ).variables;
  const hostStatementsOf = (of: FleetfoldStack) => {
    const policy = of.hostRole.role.node.tryFindChild('DefaultPolicy') as iam.Policy;
    return (of.resolve(policy.document.toJSON()) as { Statement: Statement[] }).Statement;
  };

  it('shards the state topics as stateTopicShards says and names every shard to the reconcile', () => {
    const sharded = built({ stateTopicShards: '3' });
    expect(sharded.fanout.topics).toHaveLength(3);
    const names = sharded.fanout.topics.map(
      (topic) => sharded.resolve((topic.node.defaultChild as sns.CfnTopic).topicName) as string,
    );
    expect(names).toEqual(['fleetfold-states-0', 'fleetfold-states-1', 'fleetfold-states-2']);
    expect(JSON.stringify(environmentOf(sharded).STATE_TOPIC_ARNS)).toContain(
      logicalId(sharded.fanout.topics[2] as IConstruct),
    );
  });

  it('rejects a shard count that is not a whole number of at least 1', () => {
    expect(() => built({ stateTopicShards: 'two' })).toThrow(/stateTopicShards/);
    expect(() => built({ stateTopicShards: 0 })).toThrow(/stateTopicShards/);
  });

  it('installs the agent from agentArtifactUrl, readable by hosts as that one object', () => {
    const url = 's3://artifacts-bucket/fleetfold/agent-1.2.tar.gz';
    const custom = built({ agentArtifactUrl: url });
    expect(environmentOf(custom).AGENT_ARTIFACT_URL).toBe(url);
    expect(custom.agentArtifact).toBeUndefined();
    const reads = hostStatementsOf(custom).filter((s) => s.Sid?.startsWith('ReadAgentArtifact'));
    expect(reads).toEqual([
      expect.objectContaining({
        Action: 's3:GetObject',
        Resource: {
          'Fn::Join': [
            '',
            ['arn:', { Ref: 'AWS::Partition' }, ':s3:::artifacts-bucket/fleetfold/agent-1.2.tar.gz'],
          ],
        },
      }),
    ]);
  });

  it('launches hosts into the subnets, security groups and image the context names', () => {
    const placed = built({
      subnetIds: 'subnet-a, subnet-b',
      securityGroupIds: ['sg-1'],
      hostImageId: 'ami-123',
    });
    expect(environmentOf(placed)).toMatchObject({
      SUBNET_IDS: 'subnet-a,subnet-b',
      SECURITY_GROUP_IDS: 'sg-1',
      DEFAULT_IMAGE: 'ami-123',
    });
  });
});

describe('cdk-nag AwsSolutions', () => {
  it('reports no unacknowledged error or warning', () => {
    const report = new AwsSolutionsChecks().validateScope(app);
    const findings = report.violations.map(
      (v) => `${v.severity} ${v.ruleName} at ${v.violatingResources.map((r) => r.constructPath).join(', ')}`,
    );
    expect(findings).toEqual([]);
    expect(report.success).toBe(true);
  });

  it('fails a stack that breaks its rules (the checker is live)', () => {
    const bare = new App();
    new s3.Bucket(new Stack(bare, 'Bare'), 'Unlogged');
    const report = new AwsSolutionsChecks().validateScope(bare);
    expect(report.success).toBe(false);
    expect(report.violations.map((v) => v.ruleName)).toEqual(
      expect.arrayContaining(['AwsSolutions-S1', 'AwsSolutions-S10']),
    );
  });
});
