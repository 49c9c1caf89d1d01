import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { App, type CfnElement, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { IConstruct } from 'constructs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetfoldStack } from '../infra/stacks/fleetfold-stack.ts';
import {
  HOST_INBOX_ACTIONS,
  INBOX_TAG_KEYS,
  ownInboxStatement,
  ownStateObjectsStatement,
  SOURCE_INSTANCE_ARN,
  STATE_OBJECT_TAG_KEYS,
} from '../shared/groups/host-access.ts';

/*
 * A host's credentials reach only its own things: every statement of the host role, in the synthesized
 * stack, either holds only where the resource is tagged with the calling instance (ec2:SourceInstanceARN),
 * or is one of the few that name nothing per host (stated here with the reason). The inbox statement is the
 * very one the local SQS guard evaluates (shared/groups/host-access.ts). cdk-nag over the whole app is
 * infra.unit.test.ts's concern; this synthesizes the stack alone.
 */
let outdir: string;
let stack: FleetfoldStack;
let template: Template;

beforeAll(() => {
  outdir = mkdtempSync(path.join(tmpdir(), 'fleetfold-host-credentials-'));
  const uploadPublicKeyPem = readFileSync(
    path.join(import.meta.dirname, '..', 'infra', 'keys', 'upload-public.pem'),
    'utf8',
  );
  stack = new FleetfoldStack(new App({ outdir }), 'Fleetfold', { uploadPublicKeyPem });
  template = Template.fromStack(stack);
}, 120_000);

afterAll(() => {
  if (outdir) rmSync(outdir, { recursive: true, force: true });
});

type Statement = { Sid?: string; Action: string | string[]; Resource: unknown; Condition?: unknown };

function statementsOf(role: IConstruct): Statement[] {
  const id = Stack.of(role).getLogicalId(role.node.defaultChild as CfnElement);
  const policies = template.findResources('AWS::IAM::Policy', { Properties: { Roles: [{ Ref: id }] } });
  return Object.values(policies).flatMap(
    (p) =>
      (p as { Properties: { PolicyDocument: { Statement: Statement[] } } }).Properties.PolicyDocument
        .Statement,
  );
}

const actions = (s: Statement) => [s.Action].flat();
/** A statement as the template has it, for the JSON the shared module states (tokens resolved alike). */
const synthesized = (json: { Sid: string; Action: string[]; Resource: string[]; Condition?: unknown }) =>
  stack.resolve({
    Sid: json.Sid,
    Action: json.Action.length === 1 ? json.Action[0] : json.Action,
    Resource: json.Resource.length === 1 ? json.Resource[0] : json.Resource,
    Condition: json.Condition,
  });

describe('the host role', () => {
  it('receives and deletes only in the inbox tagged with the calling instance', () => {
    const inbox = statementsOf(stack.hostRole.role).find((s) => s.Sid === 'ReceiveOwnInbox');
    expect(inbox).toEqual({
      ...synthesized(ownInboxStatement(stack.fanout.inboxQueueArnPattern)),
      Effect: 'Allow',
    });
    expect(actions(inbox as Statement)).toEqual([...HOST_INBOX_ACTIONS]);
    expect(inbox?.Condition).toEqual({
      StringEquals: { 'aws:ResourceTag/fleetfold:instance-arn': SOURCE_INSTANCE_ARN },
    });
  });

  it('reads only the large states tagged with the calling instance', () => {
    const states = statementsOf(stack.hostRole.role).find((s) => s.Sid === 'ReadOwnLargeStates');
    expect(states).toEqual({
      ...synthesized(ownStateObjectsStatement(stack.snapshots.bucket.arnForObjects('states/*'))),
      Effect: 'Allow',
    });
    expect(states?.Condition).toEqual({
      StringEquals: { 's3:ExistingObjectTag/fleetfold:instance-arn': SOURCE_INSTANCE_ARN },
    });
  });

  it('has no statement on a per-host resource without a condition naming the caller', () => {
    const unconditioned = statementsOf(stack.hostRole.role).filter((s) => s.Condition === undefined);
    // Snapshot keys name the host id, assigned before the instance exists, so no policy variable names
    // "this host's prefix" (the ingest's HMAC check keeps hosts apart there); the agent artifact is shared.
    expect(unconditioned.map((s) => [s.Sid ?? '(no sid)', actions(s)])).toEqual([
      ['(no sid)', ['s3:PutObject']],
      ['ReadAgentArtifacts', ['s3:GetObject']],
    ]);
    const conditioned = statementsOf(stack.hostRole.role).filter((s) => s.Condition !== undefined);
    for (const statement of conditioned) {
      const text = JSON.stringify(statement.Condition);
      if (statement.Sid === 'DecryptOwnSecretParameter') {
        // Decrypts only through SSM, whose GetParameter is the instance-conditioned gate (ReadOwnSecretParameter).
        expect(text).toContain('kms:ViaService');
      } else {
        expect(text, statement.Sid).toContain(SOURCE_INSTANCE_ARN);
      }
    }
    expect(conditioned.map((s) => s.Sid).sort()).toEqual([
      'DecryptOwnSecretParameter',
      'ReadOwnLargeStates',
      'ReadOwnSecretParameter',
      'ReceiveOwnInbox',
    ]);
  });
});

describe('the reconcile role', () => {
  it('tags inboxes only with the keys the publisher writes', () => {
    const tag = statementsOf(stack.reconcile.role).find((s) => s.Sid === 'TagInboxes');
    expect(tag).toMatchObject({
      Action: 'sqs:TagQueue',
      Resource: stack.resolve(stack.fanout.inboxQueueArnPattern),
      Condition: { 'ForAllValues:StringEquals': { 'aws:TagKeys': INBOX_TAG_KEYS } },
    });
    const others = statementsOf(stack.reconcile.role).filter(
      (s) => s.Sid !== 'TagInboxes' && actions(s).includes('sqs:TagQueue'),
    );
    expect(others).toEqual([]);
  });

  it('tags large states only with the instance and cost keys, under states/', () => {
    const tag = statementsOf(stack.reconcile.role).find((s) => s.Sid === 'TagLargeStates');
    expect(tag).toMatchObject({
      Action: 's3:PutObjectTagging',
      Resource: stack.resolve(stack.snapshots.bucket.arnForObjects('states/*')),
      Condition: { 'ForAllValues:StringEquals': { 's3:RequestObjectTagKeys': STATE_OBJECT_TAG_KEYS } },
    });
  });

  it('knows the instance ARN prefix the inbox and large-state tags are written with', () => {
    const fn = template.toJSON().Resources[
      Stack.of(stack).getLogicalId(stack.reconcile.function.node.defaultChild as CfnElement)
    ] as { Properties: { Environment: { Variables: Record<string, unknown> } } };
    expect(fn.Properties.Environment.Variables.HOST_INSTANCE_ARN_PREFIX).toBeDefined();
  });
});
