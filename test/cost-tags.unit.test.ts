import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { CfnResource, Stack, TagManager } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../infra/build-app.ts';
import type { FleetfoldStack } from '../infra/stacks/fleetfold-stack.ts';
import { COST_ALLOCATION_TAGS } from '../shared/cost/tags.ts';

const outdir = mkdtempSync(path.join(tmpdir(), 'fleetfold-cost-tags-'));
let stack: FleetfoldStack;
let template: Template;

beforeAll(() => {
  ({ stack } = buildApp({ outdir }));
  template = Template.fromStack(stack);
});
afterAll(() => rmSync(outdir, { recursive: true, force: true }));

describe('cost allocation tags', () => {
  it('are on every taggable resource of the stack', () => {
    const taggable = stack.node
      .findAll()
      .filter((c): c is CfnResource => CfnResource.isCfnResource(c) && TagManager.isTaggable(c));
    // Most of the stack is taggable (functions, tables, queues, buckets, keys, topics, the state machine …).
    expect(taggable.length).toBeGreaterThan(20);
    const untagged = taggable
      .filter((resource) => {
        const tags = (resource as unknown as { tags: TagManager }).tags.tagValues();
        return Object.entries(COST_ALLOCATION_TAGS).some(([key, value]) => tags[key] !== value);
      })
      .map((resource) => `${resource.cfnResourceType} ${resource.node.path}`);
    expect(untagged).toEqual([]);
    const types = new Set(taggable.map((resource) => resource.cfnResourceType));
    for (const type of ['AWS::Lambda::Function', 'AWS::DynamoDB::Table', 'AWS::SQS::Queue', 'AWS::KMS::Key'])
      expect(types, type).toContain(type);
  });
});

describe('the usage counters', () => {
  it('let the ingest add to the documents table and do nothing else with it', () => {
    const role = Stack.of(stack).resolve((stack.ingest.role.node.defaultChild as CfnResource).logicalId);
    const policies = template.findResources('AWS::IAM::Policy', { Properties: { Roles: [{ Ref: role }] } });
    const documents = Stack.of(stack).resolve(
      (stack.tables.documents.node.defaultChild as CfnResource).logicalId,
    );
    const onDocuments = Object.values(policies)
      .flatMap(
        (policy) =>
          (
            policy as {
              Properties: { PolicyDocument: { Statement: { Action: unknown; Resource: unknown }[] } };
            }
          ).Properties.PolicyDocument.Statement,
      )
      .filter((statement) => JSON.stringify(statement.Resource).includes(documents));
    expect(onDocuments).toEqual([
      expect.objectContaining({
        Action: 'dynamodb:UpdateItem',
        Resource: { 'Fn::GetAtt': [documents, 'Arn'] },
      }),
    ]);
    const ingest =
      template.toJSON().Resources[
        Stack.of(stack).resolve((stack.ingest.function.node.defaultChild as CfnResource).logicalId)
      ];
    expect(ingest.Properties.Environment.Variables.DOCUMENTS_TABLE).toEqual({ Ref: documents });
  });
});
