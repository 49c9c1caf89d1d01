import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { App, type CfnElement, Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FUNCTION_RUNTIME } from '../infra/constructs/fleet-function.ts';
import { acknowledge } from '../infra/constructs/nag.ts';
import { FANOUT_ENV, StateFanout } from '../infra/constructs/state-fanout.ts';

/*
 * The construct on its own in a stack with cdk-nag registered as `cdk synth` runs it: an unacknowledged
 * finding makes synthesis throw. The bucket and functions are minimal fixtures (not the stack's), so their
 * own findings are acknowledged here and only the construct's are under test.
 */
let outdir: string;
let template: Template;
let stack: Stack;
let fanout: StateFanout;
let publisherRole: iam.Role;
let hostRole: iam.Role;

function fixtureFunction(scope: Stack, id: string) {
  const role = new iam.Role(scope, `${id}Role`, {
    assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
  });
  const fn = new lambda.Function(scope, id, {
    runtime: FUNCTION_RUNTIME,
    handler: 'index.handler',
    code: lambda.Code.fromInline('export const handler = async () => {};'),
    role,
  });
  return { function: fn, role };
}

beforeAll(() => {
  outdir = mkdtempSync(path.join(tmpdir(), 'fleetfold-fanout-cdk-'));
  const app = new App({ outdir });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  stack = new Stack(app, 'FanoutTest');
  const bucket = new s3.Bucket(stack, 'Bucket', { enforceSSL: true });
  acknowledge(bucket, { 'AwsSolutions-S1': 'test fixture: the real bucket logs access' });
  fanout = new StateFanout(stack, 'Fanout', { bucket, shardCount: 3 });
  const publisher = fixtureFunction(stack, 'Publisher');
  publisherRole = publisher.role;
  fanout.grantPublish(publisher);
  fanout.grantSign(publisher);
  fanout.grantManageInboxes(publisher);
  hostRole = new iam.Role(stack, 'HostRole', { assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com') });
  fanout.grantReceive(hostRole);
  app.synth();
  template = Template.fromStack(stack);
}, 120_000);

afterAll(() => {
  if (outdir) rmSync(outdir, { recursive: true, force: true });
});

function logicalId(construct: IConstruct): string {
  return Stack.of(construct).getLogicalId(construct.node.defaultChild as CfnElement);
}

type Statement = { Action: string | string[]; Resource: unknown };

function statementsOf(role: iam.Role): Statement[] {
  const policies = template.findResources('AWS::IAM::Policy', {
    Properties: { Roles: [{ Ref: logicalId(role) }] },
  });
  return Object.values(policies).flatMap(
    (p) =>
      (p as { Properties: { PolicyDocument: { Statement: Statement[] } } }).Properties.PolicyDocument
        .Statement,
  );
}

const actionsOf = (statements: Statement[]) => statements.flatMap((s) => [s.Action].flat()).sort();

describe('StateFanout', () => {
  it('creates one encrypted, TLS-only topic per shard with the agreed names', () => {
    template.resourceCountIs('AWS::SNS::Topic', 3);
    for (const name of ['fleetfold-states-0', 'fleetfold-states-1', 'fleetfold-states-2']) {
      template.hasResourceProperties('AWS::SNS::Topic', {
        TopicName: name,
        KmsMasterKeyId: Match.anyValue(),
      });
    }
    template.resourceCountIs('AWS::SNS::TopicPolicy', 3);
  });

  it('names a single topic fleetfold-states', () => {
    const single = new Stack(new App(), 'Single');
    new StateFanout(single, 'Fanout', { bucket: new s3.Bucket(single, 'B') });
    Template.fromStack(single).hasResourceProperties('AWS::SNS::Topic', { TopicName: 'fleetfold-states' });
  });

  it('signs with a retained ECC_NIST_P256 SIGN_VERIFY key', () => {
    template.hasResource('AWS::KMS::Key', {
      DeletionPolicy: 'Retain',
      Properties: { KeySpec: 'ECC_NIST_P256', KeyUsage: 'SIGN_VERIFY' },
    });
  });

  it('tells the publisher its topics, bucket and key, with the grants to use exactly those', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Role: Match.objectLike({ 'Fn::GetAtt': [logicalId(publisherRole), 'Arn'] }),
      Environment: {
        Variables: Match.objectLike({
          [FANOUT_ENV.topicArns]: Match.anyValue(),
          [FANOUT_ENV.bucket]: Match.anyValue(),
          [FANOUT_ENV.signingKeyArn]: Match.anyValue(),
        }),
      },
    });
    const actions = actionsOf(statementsOf(publisherRole));
    for (const action of [
      'sns:Publish',
      'kms:Sign',
      's3:PutObject',
      'sqs:CreateQueue',
      'sqs:DeleteQueue',
      'sns:Subscribe',
      'sns:Unsubscribe',
    ]) {
      expect(actions).toContain(action);
    }
    expect(actions).not.toContain('s3:GetObject');
    expect(actions).not.toContain('sqs:ReceiveMessage');
  });

  it('lets hosts receive from inboxes and read referenced states, and nothing else', () => {
    expect(actionsOf(statementsOf(hostRole))).toEqual([
      's3:GetObject',
      'sqs:ChangeMessageVisibility',
      'sqs:DeleteMessage',
      'sqs:GetQueueAttributes',
      'sqs:GetQueueUrl',
      'sqs:ReceiveMessage',
    ]);
    const sqsStatement = statementsOf(hostRole).find((s) => actionsOf([s]).includes('sqs:ReceiveMessage'));
    expect(JSON.stringify(stack.resolve(sqsStatement?.Resource))).toContain(':fleetfold-inbox-*');
  });
});
