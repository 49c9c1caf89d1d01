import { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { SNAPSHOT_PREFIX } from '../../shared/keys.ts';
import { acknowledge, nagArn } from './nag.ts';

export interface HostInstanceRoleProps {
  /** The snapshot bucket hosts upload to directly. */
  readonly bucket: s3.IBucket;
}

/**
 * The role (and instance profile) EC2 hosts run with, for the direct upload path:
 * `PUT s3://<bucket>/snapshots/<hostId>/<seq>.json` with the instance's credentials.
 *
 * The role may only `s3:PutObject` under `snapshots/`: no read, list or delete, so a compromised host learns
 * nothing about the fleet and cannot erase evidence. IAM can tell two hosts of this role apart (their
 * credentials carry `ec2:SourceInstanceARN`, and `aws:userid` is `<roleId>:<instanceId>`), which is how the
 * inbox, large-state and secret grants reach only the caller's own (shared/groups/host-access.ts). The
 * snapshot key names the host id, though, which is chosen before the instance exists and is not its instance
 * id, so no policy variable can name "this host's prefix": keeping host A out of `snapshots/B/` stays the
 * ingest's job. Each snapshot body is HMAC-signed with the secret of the host it claims to be, and the ingest
 * quarantines (moves to `rejected/`) anything under a prefix whose host did not sign it. A host can therefore
 * write bytes under another host's prefix but never change that host's state, and the request's principal
 * (`<roleId>:<instanceId>` in CloudTrail data events and S3 access logs) says which instance wrote them.
 */
export class HostInstanceRole extends Construct {
  readonly role: iam.Role;
  readonly instanceProfile: iam.InstanceProfile;

  constructor(scope: Construct, id: string, props: HostInstanceRoleProps) {
    super(scope, id);
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
      description: 'fleetfold host: uploads snapshots, reads its inbox, its own secret and the agent',
    });
    this.role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['s3:PutObject'],
        resources: [props.bucket.arnForObjects(`${SNAPSHOT_PREFIX}*`)],
      }),
    );
    this.instanceProfile = new iam.InstanceProfile(this, 'InstanceProfile', { role: this.role });

    acknowledge(this.role, {
      [`AwsSolutions-IAM5[Resource::${nagArn(props.bucket)}/${SNAPSHOT_PREFIX}*]`]:
        "Hosts choose their own key (snapshots/<hostId>/<seq>.json); the host id is assigned before launch and is not the instance id, so no policy variable names one host's prefix: the grant is the snapshots/ prefix and per-host integrity comes from the HMAC the ingest verifies.",
    });
  }

  /**
   * The boot script downloads the agent with `aws s3 cp`: hosts may read the objects under `prefix`, so a new
   * artifact can be published beside the old one without a deployment.
   */
  grantAgentArtifacts(bucket: s3.IBucket, prefix: string): void {
    this.role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ReadAgentArtifacts',
        actions: ['s3:GetObject'],
        resources: [bucket.arnForObjects(`${prefix}*`)],
      }),
    );
    acknowledge(this.role, {
      [`AwsSolutions-IAM5[Resource::${nagArn(bucket)}/${prefix}*]`]:
        'Agent artifacts are published under one prefix (e.g. agent/fleetfold-agent.tar.gz); hosts read them at boot and hold nothing secret.',
    });
  }

  /** An agent artifact outside the stack's bucket (`s3://bucket/key`): hosts may read that one object. */
  grantAgentArtifactUrl(url: string): void {
    const match = /^s3:\/\/([^/\s]+)\/(\S+)$/.exec(url);
    if (!match) throw new Error(`agent artifact URL "${url}" is not an s3://bucket/key URL`);
    this.role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ReadAgentArtifact',
        actions: ['s3:GetObject'],
        resources: [`arn:${Stack.of(this).partition}:s3:::${match[1]}/${match[2]}`],
      }),
    );
  }
}
