import { ArnFormat, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct, type IConstruct } from 'constructs';
import {
  INBOX_QUEUE_PREFIX,
  STATE_PREFIX,
  STATE_TOPIC_BASE,
  topicNames,
} from '../../shared/groups/fanout.ts';
import {
  INBOX_TAG_KEYS,
  ownInboxStatement,
  ownStateObjectsStatement,
  STATE_OBJECT_TAG_KEYS,
} from '../../shared/groups/host-access.ts';
import { acknowledge, nagArn } from './nag.ts';

/** Environment variables the grant methods set, read by the functions' config.ts. */
export const FANOUT_ENV = {
  /** Comma-separated topic ARNs, shard n at position n. */
  topicArns: 'STATE_TOPIC_ARNS',
  /** Bucket that holds too-large states under `states/` (the reconcile function's one bucket). */
  bucket: 'BUCKET',
  /** ARN of the asymmetric signing key. */
  signingKeyArn: 'SIGNING_KEY_ARN',
} as const;

export interface StateFanoutProps {
  /** The bucket whose `states/` prefix holds states too large for a message (the snapshot bucket will do). */
  readonly bucket: s3.IBucket;
  /**
   * Topic shards: one shard per ~200 hosts, SNS's default filter-policy quota per topic (see shardCountFor()).
   * Changing it moves hosts between shards; their inboxes follow on the next ensureInbox.
   * @default 1
   */
  readonly shardCount?: number;
  /**
   * Topic names are `<base>` (one shard) or `<base>-<n>`.
   * @default 'fleetfold-states'
   */
  readonly topicNameBase?: string;
  /**
   * Agents pin the signing key's public half, so replacing the key means reconfiguring every host.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * @default Duration.days(30)
   */
  readonly pendingWindow?: Duration;
}

/** A function as the grants see it: its environment and its own role (FleetFunction fits). */
export interface FanoutFunction {
  readonly function: lambda.Function;
  readonly role: iam.Role;
}

/**
 * Fan-out of signed desired states: the SNS topic shards (SSE, TLS only), the KMS key that signs every state
 * (ECC_NIST_P256, SIGN_VERIFY; agents verify with its public key), and the grants for the functions that
 * publish, sign and manage the per-host inboxes, and for hosts that read them.
 *
 * The inboxes themselves (`fleetfold-inbox-<hostId>` + `-dlq`, SSE-SQS) are created at run time by the
 * function holding grantManageInboxes, when a host is launched: hosts come and go far more often than the
 * stack is deployed, and a per-host resource in the template would make every launch a deployment.
 */
export class StateFanout extends Construct {
  readonly topics: sns.Topic[];
  readonly signingKey: kms.Key;
  readonly shardCount: number;
  private readonly bucket: s3.IBucket;

  constructor(scope: Construct, id: string, props: StateFanoutProps) {
    super(scope, id);
    this.bucket = props.bucket;
    this.shardCount = props.shardCount ?? 1;
    // SNS's own key is enough here: the queues use SSE-SQS, and a customer key on the topics would have to be
    // granted to SNS and to every publisher for no gain in who can read the states.
    const snsKey = kms.Alias.fromAliasName(this, 'SnsManagedKey', 'alias/aws/sns');
    this.topics = topicNames(this.shardCount, props.topicNameBase ?? STATE_TOPIC_BASE).map(
      (topicName, shard) =>
        new sns.Topic(this, `Shard${shard}`, {
          topicName,
          displayName: `fleetfold desired states, shard ${shard} of ${this.shardCount}`,
          masterKey: snsKey,
          enforceSSL: true,
        }),
    );
    this.signingKey = new kms.Key(this, 'SigningKey', {
      description: 'fleetfold: signs the desired states sent to hosts (agents verify with its public key)',
      keySpec: kms.KeySpec.ECC_NIST_P256,
      keyUsage: kms.KeyUsage.SIGN_VERIFY,
      pendingWindow: props.pendingWindow ?? Duration.days(30),
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
  }

  /** ARN pattern of every inbox queue and its DLQ. */
  get inboxQueueArnPattern(): string {
    return Stack.of(this).formatArn({
      service: 'sqs',
      resource: `${INBOX_QUEUE_PREFIX}*`,
      arnFormat: ArnFormat.NO_RESOURCE_NAME,
    });
  }

  /**
   * May publish to every shard and store too-large states under `states/`, tagged (S3 authorizes a PUT's
   * tags as s3:PutObjectTagging) with the instance that may read them and the cost allocation tag, no other.
   */
  grantPublish(fn: FanoutFunction): void {
    this.setTopicsEnv(fn);
    fn.function.addEnvironment(FANOUT_ENV.bucket, this.bucket.bucketName);
    for (const topic of this.topics) topic.grantPublish(fn.function);
    fn.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:PutObject'],
        resources: [this.bucket.arnForObjects(`${STATE_PREFIX}*`)],
      }),
    );
    fn.function.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'TagLargeStates',
        actions: ['s3:PutObjectTagging'],
        resources: [this.bucket.arnForObjects(`${STATE_PREFIX}*`)],
        conditions: {
          'ForAllValues:StringEquals': { 's3:RequestObjectTagKeys': STATE_OBJECT_TAG_KEYS },
        },
      }),
    );
    acknowledge(fn.role, {
      [`AwsSolutions-IAM5[Resource::${nagArn(this.bucket)}/${STATE_PREFIX}*]`]:
        'States are written as states/<hostId>/<stateVersion>.json for whichever hosts a reconcile touches; the prefix is the narrowest fixed resource.',
    });
  }

  /** May sign with the state signing key (and read its public half to hand to agents). */
  grantSign(fn: FanoutFunction): void {
    fn.function.addEnvironment(FANOUT_ENV.signingKeyArn, this.signingKey.keyArn);
    this.signingKey.grant(fn.function, 'kms:Sign', 'kms:GetPublicKey');
  }

  /**
   * May create, subscribe, re-filter, tag and delete per-host inboxes. Tags are limited to the keys the
   * publisher writes: the subscription, the instance the inbox belongs to (what the host role's access is
   * conditioned on) and the cost allocation tag.
   */
  grantManageInboxes(fn: FanoutFunction): void {
    this.setTopicsEnv(fn);
    fn.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: [
          'sqs:CreateQueue',
          'sqs:GetQueueUrl',
          'sqs:GetQueueAttributes',
          'sqs:SetQueueAttributes',
          'sqs:DeleteQueue',
          'sqs:ListQueueTags',
        ],
        resources: [this.inboxQueueArnPattern],
      }),
    );
    // CreateQueue with tags is authorized as TagQueue too, so one statement bounds both ways of tagging.
    fn.function.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'TagInboxes',
        actions: ['sqs:TagQueue'],
        resources: [this.inboxQueueArnPattern],
        conditions: { 'ForAllValues:StringEquals': { 'aws:TagKeys': INBOX_TAG_KEYS } },
      }),
    );
    // SNS authorizes subscription calls against the topic; the subscription ARNs (`<topic>:<id>`) are listed
    // as well so the grant holds whichever ARN a call is evaluated on.
    fn.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: [
          'sns:Subscribe',
          'sns:Unsubscribe',
          'sns:SetSubscriptionAttributes',
          'sns:ListSubscriptionsByTopic',
        ],
        resources: this.topics.flatMap((topic) => [topic.topicArn, `${topic.topicArn}:*`]),
      }),
    );
    acknowledge(fn.role, {
      [`AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sqs:<AWS::Region>:<AWS::AccountId>:${INBOX_QUEUE_PREFIX}*]`]:
        'One queue (and DLQ) per host, created when the host is launched: names are known only at run time, so the grant is the fleetfold-inbox- prefix.',
      ...Object.fromEntries(
        this.topics.map((topic) => [
          `AwsSolutions-IAM5[Resource::<${Stack.of(this).getLogicalId(topic.node.defaultChild as sns.CfnTopic)}>:*]`,
          'Subscriptions of the state topic are made per host at run time; their ARNs are the topic ARN plus a generated id.',
        ]),
      ),
    });
  }

  /**
   * Hosts (their instance role) may long-poll and delete messages of their own inbox and fetch the large
   * states written for them, and no other host's: every host shares the role, but each statement holds only
   * where the resource's `fleetfold:instance-arn` tag equals `${ec2:SourceInstanceARN}`, the instance whose
   * credentials sign the request (see shared/groups/host-access.ts; the reconcile tags both after launch).
   */
  grantReceive(grantee: iam.IGrantable & IConstruct): void {
    grantee.grantPrincipal.addToPrincipalPolicy(
      iam.PolicyStatement.fromJson(ownInboxStatement(this.inboxQueueArnPattern)),
    );
    grantee.grantPrincipal.addToPrincipalPolicy(
      iam.PolicyStatement.fromJson(ownStateObjectsStatement(this.bucket.arnForObjects(`${STATE_PREFIX}*`))),
    );
    acknowledge(grantee, {
      [`AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sqs:<AWS::Region>:<AWS::AccountId>:${INBOX_QUEUE_PREFIX}*]`]:
        "Inboxes are created per host at launch, so the resource is the prefix; the condition that the queue's fleetfold:instance-arn tag equals ec2:SourceInstanceARN lets each instance reach only its own.",
      [`AwsSolutions-IAM5[Resource::${nagArn(this.bucket)}/${STATE_PREFIX}*]`]:
        "Too-large states are written per host at run time, so the resource is the prefix; the condition that the object's fleetfold:instance-arn tag equals ec2:SourceInstanceARN lets each instance read only its own.",
    });
  }

  private setTopicsEnv(fn: FanoutFunction): void {
    fn.function.addEnvironment(FANOUT_ENV.topicArns, this.topics.map((t) => t.topicArn).join(','));
  }
}
