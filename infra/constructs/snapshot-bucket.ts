import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { PLAN_PREFIX } from '../../functions/reconcile/plan-store.ts';
import { STATE_PREFIX } from '../../shared/groups/fanout.ts';
import { REJECTED_PREFIX, SNAPSHOT_PREFIX } from '../../shared/keys.ts';

export interface SnapshotBucketProps {
  /**
   * Days after which `snapshots/` objects and noncurrent object versions expire. The event log keeps what
   * matters, so the raw documents are only needed to replay a recent ingest.
   * @default 30
   */
  readonly snapshotRetentionDays?: number;
  /**
   * Days after which quarantined objects under `rejected/` expire; long enough to investigate an incident.
   * @default 90
   */
  readonly rejectedRetentionDays?: number;
  /**
   * Days after which desired states too large for a message (`states/<hostId>/<version>.json`) expire. A host
   * fetches its state within moments of the message; a week covers an agent that was down for a while.
   * @default 7
   */
  readonly stateRetentionDays?: number;
  /**
   * Days after which plans too large for a document (`plans/<planId>.json`) expire: a run needs its plan only
   * while it lasts (at most a day), the rest is for looking into a past run.
   * @default 30
   */
  readonly planRetentionDays?: number;
  /**
   * Days after which server access logs (and CloudFront logs written to the same bucket) expire.
   * @default 90
   */
  readonly accessLogRetentionDays?: number;
  /**
   * What happens to both buckets when the stack is deleted.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The bucket hosts upload their snapshots to, and the bucket its access logs go to.
 * Private, TLS-only, versioned (an overwritten snapshot is still there for the ingest to read).
 */
export class SnapshotBucket extends Construct {
  readonly bucket: s3.Bucket;
  readonly logBucket: s3.Bucket;

  constructor(scope: Construct, id: string, props: SnapshotBucketProps = {}) {
    super(scope, id);
    const snapshotDays = Duration.days(props.snapshotRetentionDays ?? 30);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;

    this.logBucket = new s3.Bucket(this, 'AccessLogs', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      // CloudFront standard logging still delivers through ACLs; S3 server access logs use the bucket policy.
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
      lifecycleRules: [{ id: 'expire-logs', expiration: Duration.days(props.accessLogRetentionDays ?? 90) }],
      removalPolicy,
    });

    this.bucket = new s3.Bucket(this, 'Snapshots', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      versioned: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: this.logBucket,
      serverAccessLogsPrefix: 'snapshots-bucket/',
      lifecycleRules: [
        {
          id: 'expire-noncurrent-versions',
          noncurrentVersionExpiration: snapshotDays,
          expiredObjectDeleteMarker: true,
          abortIncompleteMultipartUploadAfter: Duration.days(1),
        },
        { id: 'expire-snapshots', prefix: SNAPSHOT_PREFIX, expiration: snapshotDays },
        {
          id: 'expire-rejected',
          prefix: REJECTED_PREFIX,
          expiration: Duration.days(props.rejectedRetentionDays ?? 90),
        },
        {
          id: 'expire-states',
          prefix: STATE_PREFIX,
          expiration: Duration.days(props.stateRetentionDays ?? 7),
        },
        { id: 'expire-plans', prefix: PLAN_PREFIX, expiration: Duration.days(props.planRetentionDays ?? 30) },
      ],
      removalPolicy,
    });
  }
}
