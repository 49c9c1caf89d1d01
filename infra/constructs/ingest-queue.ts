import { Duration } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3n from 'aws-cdk-lib/aws-s3-notifications';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { SNAPSHOT_PREFIX } from '../../shared/keys.ts';

export interface IngestQueueProps {
  /** The bucket whose new snapshot objects (`snapshots/**.json`) are announced on the queue. */
  readonly bucket: s3.IBucket;
  /**
   * Timeout of the function consuming the queue. The visibility timeout is six times this, as Lambda
   * advises for SQS event sources, so a batch retried inside one invocation is not redelivered meanwhile.
   */
  readonly consumerTimeout: Duration;
  /**
   * Deliveries before a message is parked in the dead-letter queue.
   * @default 5
   */
  readonly maxReceiveCount?: number;
  /**
   * How long the dead-letter queue keeps a message for inspection and redrive.
   * @default Duration.days(14)
   */
  readonly deadLetterRetention?: Duration;
}

/** S3 "object created" events for snapshots, queued for batched ingest, with a dead-letter queue. */
export class IngestQueue extends Construct {
  readonly queue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;

  constructor(scope: Construct, id: string, props: IngestQueueProps) {
    super(scope, id);
    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: props.deadLetterRetention ?? Duration.days(14),
    });
    this.queue = new sqs.Queue(this, 'Queue', {
      // SQS-managed keys: S3 can publish to the queue without a customer key policy granting it kms:GenerateDataKey.
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      visibilityTimeout: Duration.seconds(props.consumerTimeout.toSeconds() * 6),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: props.maxReceiveCount ?? 5 },
    });
    props.bucket.addEventNotification(s3.EventType.OBJECT_CREATED, new s3n.SqsDestination(this.queue), {
      prefix: SNAPSHOT_PREFIX,
      suffix: '.json',
    });
  }
}
