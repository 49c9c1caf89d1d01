import { Stack } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type { FleetFunction } from './fleet-function.ts';
import { acknowledge, nagArn } from './nag.ts';

/*
 * Each helper sets the environment variable naming a resource together with the grant on that resource,
 * so a function can never be told about a resource it may not use, nor be granted one it is not told about.
 */

export type TableAccess = 'read' | 'readWrite';

/*
 * Item-level actions only: no streams (the tables have none), no DescribeTable or ConditionCheckItem (the
 * stores use single-item conditional writes, never transactions).
 */
const TABLE_READ_ACTIONS = ['dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:Query', 'dynamodb:Scan'];
const TABLE_WRITE_ACTIONS = [
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
  'dynamodb:DeleteItem',
  'dynamodb:BatchWriteItem',
];

export function bindTable(
  fn: FleetFunction,
  envName: string,
  table: dynamodb.Table,
  access: TableAccess,
): void {
  fn.function.addEnvironment(envName, table.tableName);
  table.grant(fn.function, ...TABLE_READ_ACTIONS, ...(access === 'readWrite' ? TABLE_WRITE_ACTIONS : []));
  if (hasGlobalIndexes(table)) {
    acknowledge(fn.role, {
      [`AwsSolutions-IAM5[Resource::${nagArn(table)}/index/*]`]:
        'Queries by group, role and status go through the table\'s own GSIs; "index/*" names only indexes of this one table.',
    });
  }
}

/** Table grants add `<table>/index/*` exactly when the table has indexes; so does the acknowledgement. */
function hasGlobalIndexes(table: dynamodb.Table): boolean {
  const cfn = table.node.defaultChild as dynamodb.CfnTable;
  const indexes: unknown = Stack.of(table).resolve(cfn.globalSecondaryIndexes);
  return Array.isArray(indexes) && indexes.length > 0;
}

/**
 * The hourly usage counters (shared/adapters/dynamo-usage-counter.ts) in the documents table, for a function
 * that needs nothing else of it: UpdateItem on the table alone, no read and no index.
 */
export function bindUsageCounter(fn: FleetFunction, table: dynamodb.Table): void {
  fn.function.addEnvironment('DOCUMENTS_TABLE', table.tableName);
  iam.Grant.addToPrincipal({
    grantee: fn.function,
    actions: ['dynamodb:UpdateItem'],
    resourceArns: [table.tableArn],
  });
}

export type KeyUse = 'encrypt' | 'decrypt';

/** Only the single KMS action needed: no ReEncrypt or GenerateDataKey (secrets are small, encrypted directly). */
export function bindKey(fn: FleetFunction, envName: string, key: kms.IKey, use: KeyUse): void {
  fn.function.addEnvironment(envName, key.keyArn);
  key.grant(fn.function, use === 'encrypt' ? 'kms:Encrypt' : 'kms:Decrypt');
}

export interface BucketAccess {
  /** Key patterns (e.g. `snapshots/*`) the function may `s3:GetObject`. */
  readonly get?: readonly string[];
  /** Key patterns the function may `s3:PutObject`. */
  readonly put?: readonly string[];
  /** Key patterns the function may `s3:DeleteObject`. */
  readonly delete?: readonly string[];
  /** Why the function needs whole prefixes rather than named objects; goes into the cdk-nag report. */
  readonly reason: string;
}

export function bindBucket(
  fn: FleetFunction,
  envName: string,
  bucket: s3.IBucket,
  access: BucketAccess,
): void {
  fn.function.addEnvironment(envName, bucket.bucketName);
  const grants: [string, readonly string[] | undefined][] = [
    ['s3:GetObject', access.get],
    ['s3:PutObject', access.put],
    ['s3:DeleteObject', access.delete],
  ];
  if (access.get?.length) {
    // Without ListBucket, S3 answers a GET of a missing key with 403, not 404: the ingest could not tell an
    // object an earlier delivery already quarantined from a real permission problem.
    fn.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:ListBucket'],
        resources: [bucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': [...access.get] } },
      }),
    );
  }
  const patterns = new Set<string>();
  for (const [action, keyPatterns] of grants) {
    if (!keyPatterns?.length) continue;
    fn.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: [action],
        resources: keyPatterns.map((pattern) => bucket.arnForObjects(pattern)),
      }),
    );
    for (const pattern of keyPatterns) patterns.add(pattern);
  }
  for (const pattern of patterns) {
    acknowledge(fn.role, { [`AwsSolutions-IAM5[Resource::${nagArn(bucket)}/${pattern}]`]: access.reason });
  }
}

/** May publish to the topic (sns:Publish on it alone), and is told its ARN. */
export function bindTopicPublish(fn: FleetFunction, envName: string, topic: sns.ITopic): void {
  fn.function.addEnvironment(envName, topic.topicArn);
  topic.grantPublish(fn.function);
}
