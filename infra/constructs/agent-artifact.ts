import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BOOTSTRAP_QUALIFIER_CONTEXT, DefaultStackSynthesizer, Stack } from 'aws-cdk-lib';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3deploy from 'aws-cdk-lib/aws-s3-deployment';
import { Construct } from 'constructs';
import {
  AGENT_ARTIFACT_FILE,
  type AgentArtifact as BuiltArtifact,
  buildAgentArtifact,
} from '../../agent/package/build-artifact.ts';
import { acknowledge, nagArn } from './nag.ts';

export interface AgentArtifactProps {
  readonly bucket: s3.IBucket;
  /** Folder of the bucket the artifact goes to, ending in `/` (e.g. `agent/`). */
  readonly prefix: string;
}

/**
 * Builds the agent artifact at synth time (esbuild, about a second; no `npm run package:agent` needed first)
 * and uploads it at deploy time to `<prefix>fleetfold-agent.tar.gz`, where hosts' boot scripts fetch it.
 *
 * The asset is a folder holding only the tar.gz: CDK zips it and the deployment extracts the zip, so the
 * object keeps its name. (`extract: false` would upload the asset under its hash instead.) The tar.gz has the
 * same bytes for the same sources, so an unchanged agent is neither uploaded nor shown by `cdk diff` again.
 */
export class AgentArtifact extends Construct {
  readonly deployment: s3deploy.BucketDeployment;
  readonly objectKey: string;
  /** What was packaged; absent when the stack is not being bundled (`cdk ls`, or another stack selected). */
  readonly artifact?: BuiltArtifact;

  constructor(scope: Construct, id: string, props: AgentArtifactProps) {
    super(scope, id);
    this.objectKey = `${props.prefix}${AGENT_ARTIFACT_FILE}`;
    const staging = mkdtempSync(join(tmpdir(), 'fleetfold-agent-artifact-'));
    try {
      // The same rule as CDK's own bundling: build only for stacks being deployed or synthesized for real.
      if (Stack.of(this).bundlingRequired) this.artifact = buildAgentArtifact(staging);
      this.deployment = new s3deploy.BucketDeployment(this, 'Upload', {
        // Copied into the cloud assembly here and now, so the temporary folder can go right after.
        sources: [s3deploy.Source.asset(staging)],
        destinationBucket: props.bucket,
        destinationKeyPrefix: props.prefix,
        contentType: 'application/gzip',
        // Leaves whatever else an operator keeps under the prefix (say, an older agent) where it is.
        prune: false,
      });
    } finally {
      rmSync(staging, { recursive: true, force: true });
    }
    this.acknowledgeDeploymentHandler(props.bucket);
  }

  /** BucketDeployment's handler is a stack-wide singleton Lambda of CDK's own, configured by aws-cdk-lib. */
  private acknowledgeDeploymentHandler(bucket: s3.IBucket): void {
    const stack = Stack.of(this);
    const handler = stack.node.children.find((child) =>
      child.node.id.startsWith('Custom::CDKBucketDeployment'),
    );
    if (!handler) throw new Error('expected the BucketDeployment handler in the stack');
    const fixed = 'CDK-provided deploy-time handler that copies the agent artifact into the bucket';
    const grants = `${fixed}: aws-cdk-lib grants it read on the CDK asset bucket and write under the destination bucket, with these wildcards; it runs only during a deployment.`;
    acknowledge(handler, {
      'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]': `${fixed}; its role and logging are fixed by aws-cdk-lib.`,
      'AwsSolutions-L1': `${fixed}; aws-cdk-lib pins its runtime (and the AWS CLI layer it needs) and upgrades it with the library.`,
      ...Object.fromEntries(
        ['s3:GetBucket*', 's3:GetObject*', 's3:List*', 's3:DeleteObject*', 's3:Abort*'].map((action) => [
          `AwsSolutions-IAM5[Action::${action}]`,
          grants,
        ]),
      ),
      [`AwsSolutions-IAM5[Resource::${assetBucketArn(stack)}/*]`]: grants,
      [`AwsSolutions-IAM5[Resource::${nagArn(bucket)}/*]`]: grants,
    });
  }
}

/** The CDK bootstrap's file-asset bucket as cdk-nag spells it (the qualifier may be set by context). */
function assetBucketArn(stack: Stack): string {
  const context: unknown = stack.node.tryGetContext(BOOTSTRAP_QUALIFIER_CONTEXT);
  const qualifier = typeof context === 'string' ? context : DefaultStackSynthesizer.DEFAULT_QUALIFIER;
  // `cdk-${Qualifier}-assets-${AWS::AccountId}-${AWS::Region}`: cdk-nag writes pseudo parameters as <…>.
  const name = DefaultStackSynthesizer.DEFAULT_FILE_ASSETS_BUCKET_NAME.replace(
    /\$\{([^}]+)\}/g,
    (_, placeholder: string) => (placeholder === 'Qualifier' ? qualifier : `<${placeholder}>`),
  );
  return `arn:<AWS::Partition>:s3:::${name}`;
}
