import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { type CfnElement, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { IConstruct } from 'constructs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadUploadGrantConfig } from '../functions/api/config.ts';
import { buildApp } from '../infra/build-app.ts';
import type { FleetfoldStack } from '../infra/stacks/fleetfold-stack.ts';

/*
 * The CDN path's AWS side: given the SSM parameter that holds the upload signing key (context
 * `uploadSigningKeyParameter`), the api learns where to sign for and may read that one parameter; nothing else
 * is told about it or may read it. Synthesized with cdk-nag registered, so an unacknowledged finding fails.
 */

const PARAMETER = '/fleetfold/upload-signing-key';
let outdir: string;
let stack: FleetfoldStack;
let template: Template;

beforeAll(() => {
  outdir = mkdtempSync(path.join(tmpdir(), 'fleetfold-cdk-upload-'));
  ({ stack } = buildApp({ outdir, context: { uploadSigningKeyParameter: PARAMETER } }));
  template = Template.fromStack(stack);
}, 120_000);

afterAll(() => {
  if (outdir) rmSync(outdir, { recursive: true, force: true });
});

function logicalId(construct: IConstruct): string {
  return Stack.of(construct).getLogicalId(construct.node.defaultChild as CfnElement);
}

function environmentOf(fn: IConstruct): Record<string, unknown> {
  const resource = template.toJSON().Resources[logicalId(fn)] as {
    Properties: { Environment?: { Variables?: Record<string, unknown> } };
  };
  return resource.Properties.Environment?.Variables ?? {};
}

type Statement = { Action: string | string[]; Resource: unknown };

function statementsOf(role: IConstruct): Statement[] {
  const policies = template.findResources('AWS::IAM::Policy', {
    Properties: { Roles: [{ Ref: logicalId(role) }] },
  });
  return Object.values(policies).flatMap(
    (policy) =>
      (policy as { Properties: { PolicyDocument: { Statement: Statement[] } } }).Properties.PolicyDocument
        .Statement,
  );
}

const readsParameter = (statement: Statement) =>
  JSON.stringify(statement.Resource).includes(`parameter${PARAMETER}`);

describe('upload grants on AWS', () => {
  it("tell the api the distribution's URL, the key pair id and the signing key's parameter", () => {
    const env = environmentOf(stack.api.function);
    expect(env.UPLOAD_SIGNING_KEY_PARAMETER).toBe(PARAMETER);
    expect(env.UPLOAD_KEY_PAIR_ID).toEqual({ Ref: logicalId(stack.uploads.publicKey) });
    expect(env.UPLOAD_URL).toEqual({
      'Fn::Join': ['', ['https://', { 'Fn::GetAtt': [logicalId(stack.uploads.distribution), 'DomainName'] }]],
    });
  });

  it('let the api read that one parameter, and no other function know of it or read it', () => {
    const reads = statementsOf(stack.api.role).filter(readsParameter);
    expect(reads).toHaveLength(1);
    expect([reads[0]?.Action].flat()).toContain('ssm:GetParameter');
    for (const fn of [stack.ingest, stack.reconcile]) {
      expect(Object.keys(environmentOf(fn.function)).filter((name) => name.startsWith('UPLOAD_'))).toEqual(
        [],
      );
      expect(statementsOf(fn.role).filter(readsParameter)).toEqual([]);
    }
    expect(statementsOf(stack.hostRole.role).filter(readsParameter)).toEqual([]);
  });

  it('are off (no grant at registration) when the stack has no signing key parameter', () => {
    expect(loadUploadGrantConfig({})).toBeUndefined();
    expect(() => loadUploadGrantConfig({ UPLOAD_URL: 'https://d.cloudfront.net' })).toThrow(
      /UPLOAD_KEY_PAIR_ID, UPLOAD_SIGNING_KEY_PARAMETER/,
    );
    expect(
      loadUploadGrantConfig({
        UPLOAD_URL: 'https://d.cloudfront.net',
        UPLOAD_KEY_PAIR_ID: 'K2JCJMDEHXQW5F',
        UPLOAD_SIGNING_KEY_PARAMETER: PARAMETER,
        UPLOAD_GRANT_DAYS: '7',
      }),
    ).toEqual({
      url: 'https://d.cloudfront.net',
      keyPairId: 'K2JCJMDEHXQW5F',
      signingKeyParameter: PARAMETER,
      lifetimeSeconds: 7 * 86_400,
    });
  });
});
