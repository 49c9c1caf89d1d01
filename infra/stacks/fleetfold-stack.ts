import { CfnOutput, Duration, Stack, type StackProps, Tags } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as lambdaEvents from 'aws-cdk-lib/aws-lambda-event-sources';
import type { Construct } from 'constructs';
import { PLAN_PREFIX } from '../../functions/reconcile/plan-store.ts';
import { COST_ALLOCATION_TAGS } from '../../shared/cost/tags.ts';
import { REJECTED_PREFIX, SNAPSHOT_PREFIX } from '../../shared/keys.ts';
import { AgentArtifact } from '../constructs/agent-artifact.ts';
import { AlarmTopic } from '../constructs/alarm-topic.ts';
import {
  bindBucket,
  bindKey,
  bindTable,
  bindTopicPublish,
  bindUsageCounter,
} from '../constructs/bindings.ts';
import { ControlApi, publishedDocumentFiles } from '../constructs/control-api.ts';
import { FleetFunction } from '../constructs/fleet-function.ts';
import { bindFleetControl } from '../constructs/fleet-permissions.ts';
import { FleetTables } from '../constructs/fleet-tables.ts';
import { HostInstanceRole } from '../constructs/host-instance-role.ts';
import { HostSecretParameters } from '../constructs/host-secret-parameters.ts';
import { HostSecretsKey } from '../constructs/host-secrets-key.ts';
import { IngestQueue } from '../constructs/ingest-queue.ts';
import { Monitor } from '../constructs/monitor.ts';
import { acknowledge } from '../constructs/nag.ts';
import { OperationsAlarms } from '../constructs/operations-alarms.ts';
import { OperationsDashboard } from '../constructs/operations-dashboard.ts';
import { ReconcileStateMachine } from '../constructs/reconcile-state-machine.ts';
import { SnapshotBucket } from '../constructs/snapshot-bucket.ts';
import { StateFanout } from '../constructs/state-fanout.ts';
import { bindUploadGrants, UploadDistribution } from '../constructs/upload-distribution.ts';

export interface FleetfoldStackProps extends StackProps {
  /** PEM of the public key CloudFront verifies host upload signatures with. */
  readonly uploadPublicKeyPem: string;
  /**
   * SSM SecureString with the PEM of the upload key's private half: the api signs each registered host's grant.
   * @default none: registration hands out no upload grant
   */
  readonly uploadSigningKeyParameter?: string;
  /**
   * Days raw snapshots (and noncurrent versions) are kept in the bucket.
   * @default 30
   */
  readonly snapshotRetentionDays?: number;
  /**
   * SNS topic shards the desired states fan out through: one per ~200 hosts (shardCountFor()).
   * @default 1
   */
  readonly stateTopicShards?: number;
  /**
   * `s3://bucket/key` of the agent artifact EC2 hosts install at boot; hosts may read that one object.
   * @default `s3://<snapshot bucket>/agent/fleetfold-agent.tar.gz` (hosts may read everything under agent/)
   */
  readonly agentArtifactUrl?: string;
  /**
   * Subnets hosts are launched into, spread by host id (one per AZ gives multi-AZ placement).
   * @default none: the launch template's, else the default VPC's
   */
  readonly hostSubnetIds?: readonly string[];
  /**
   * @default none: the launch template's, else the VPC's default security group
   */
  readonly hostSecurityGroupIds?: readonly string[];
  /**
   * AMI for host types that name neither an image nor a launch template.
   * @default the latest Amazon Linux 2023 arm64 AMI (its public SSM parameter, read at each deploy)
   */
  readonly hostImageId?: string;
  /**
   * An e-mail address subscribed to the alarm topic.
   * @default none: subscribe to the AlarmTopicArn output as needed
   */
  readonly alarmEmail?: string;
  /**
   * Minutes between two ticks of the monitor.
   * @default 1
   */
  readonly monitorRateMinutes?: number;
}

/**
 * The current Amazon Linux 2023 for Graviton (the demo's instance types) with its default kernel: its public
 * SSM parameter, resolved at each deploy. Hosts whose type names no image or launch template boot it.
 */
export const DEFAULT_HOST_IMAGE_PARAMETER =
  '/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64';
const DEFAULT_HOST_IMAGE = ec2.MachineImage.fromSsmParameter(DEFAULT_HOST_IMAGE_PARAMETER);

/** Where the default agent artifact lives in the snapshot bucket. */
export const AGENT_ARTIFACT_PREFIX = 'agent/';
export const AGENT_ARTIFACT_KEY = `${AGENT_ARTIFACT_PREFIX}fleetfold-agent.tar.gz`;

/** Ingest settings the function reads in functions/ingest/config.ts; here so an operator can see and tune them. */
export const INGEST_SETTINGS = {
  CLOCK_SKEW_SECONDS: '300',
  MAX_SNAPSHOT_BYTES: String(256 * 1024),
  HEARTBEAT_COALESCE_SECONDS: '60',
  LOAD_BANDS: '0.5,0.8,0.95',
  SESSION_BANDS: '1,50,200',
} as const;

/** The reconcile and the monitor allow for the ingest's heartbeat coalescing before they call a host lost. */
const HEARTBEAT_ALLOWANCE = {
  HEARTBEAT_COALESCE_SECONDS: INGEST_SETTINGS.HEARTBEAT_COALESCE_SECONDS,
} as const;

/** The alarm topic's ARN, read by the reconcile's and the api's config.ts. */
export const ALARM_TOPIC_ENV = 'ALARM_TOPIC_ARN';

const INGEST_TIMEOUT = Duration.seconds(30);

export class FleetfoldStack extends Stack {
  readonly snapshots: SnapshotBucket;
  readonly uploads: UploadDistribution;
  readonly hostRole: HostInstanceRole;
  readonly ingestQueue: IngestQueue;
  readonly tables: FleetTables;
  readonly secretsKey: HostSecretsKey;
  readonly ingest: FleetFunction;
  readonly api: FleetFunction;
  readonly controlApi: ControlApi;
  readonly reconcile: FleetFunction;
  readonly reconcileMachine: ReconcileStateMachine;
  readonly fanout: StateFanout;
  readonly hostSecrets: HostSecretParameters;
  readonly agentArtifactUrl: string;
  /** Built and uploaded by the stack when `agentArtifactUrl` is the default. */
  readonly agentArtifact?: AgentArtifact;
  readonly alarms: AlarmTopic;
  readonly monitor: Monitor;
  readonly operationsAlarms: OperationsAlarms;
  readonly dashboard: OperationsDashboard;

  constructor(scope: Construct, id: string, props: FleetfoldStackProps) {
    super(scope, id, props);
    // Cost allocation: every taggable resource of the stack is billed under these (shared/cost/tags.ts).
    for (const [key, value] of Object.entries(COST_ALLOCATION_TAGS)) Tags.of(this).add(key, value);

    this.snapshots = new SnapshotBucket(this, 'Snapshots', {
      ...(props.snapshotRetentionDays === undefined
        ? {}
        : { snapshotRetentionDays: props.snapshotRetentionDays }),
    });
    const bucket = this.snapshots.bucket;
    this.uploads = new UploadDistribution(this, 'Uploads', {
      bucket,
      logBucket: this.snapshots.logBucket,
      uploadPublicKeyPem: props.uploadPublicKeyPem,
      ...(props.uploadSigningKeyParameter
        ? { signingKeyParameterName: props.uploadSigningKeyParameter }
        : {}),
    });
    this.hostRole = new HostInstanceRole(this, 'HostRole', { bucket });
    this.ingestQueue = new IngestQueue(this, 'IngestQueue', { bucket, consumerTimeout: INGEST_TIMEOUT });
    this.tables = new FleetTables(this, 'Tables');
    this.secretsKey = new HostSecretsKey(this, 'HostSecrets');

    this.ingest = new FleetFunction(this, 'Ingest', {
      entry: 'functions/ingest/index.ts',
      description: 'Verifies uploaded snapshots and appends what changed to the event log',
      memorySize: 256,
      timeout: INGEST_TIMEOUT,
      environment: INGEST_SETTINGS,
    });
    bindTable(this.ingest, 'EVENTS_TABLE', this.tables.events, 'readWrite');
    bindTable(this.ingest, 'HOSTS_TABLE', this.tables.hosts, 'readWrite');
    bindUsageCounter(this.ingest, this.tables.documents);
    bindKey(this.ingest, 'SECRETS_KEY_ID', this.secretsKey.key, 'decrypt');
    bindBucket(this.ingest, 'BUCKET', bucket, {
      get: [`${SNAPSHOT_PREFIX}*`],
      delete: [`${SNAPSHOT_PREFIX}*`],
      put: [`${REJECTED_PREFIX}*`],
      reason:
        'The ingest reads whichever snapshots/<hostId>/<seq>.json the queue announces and moves refused ones (copy, then delete) to rejected/ with a reason file; keys are only known at run time.',
    });
    this.ingest.function.addEventSource(
      new lambdaEvents.SqsEventSource(this.ingestQueue.queue, {
        batchSize: 10,
        maxBatchingWindow: Duration.seconds(2),
        reportBatchItemFailures: true,
      }),
    );

    this.api = new FleetFunction(this, 'ApiHandler', {
      entry: 'functions/api/index.ts',
      description: 'Serves the fleetfold REST API',
      besideBundle: publishedDocumentFiles(),
      memorySize: 256,
      timeout: Duration.seconds(10),
    });
    bindTable(this.api, 'EVENTS_TABLE', this.tables.events, 'readWrite');
    bindTable(this.api, 'HOSTS_TABLE', this.tables.hosts, 'readWrite');
    bindTable(this.api, 'DOCUMENTS_TABLE', this.tables.documents, 'readWrite');
    bindKey(this.api, 'SECRETS_KEY_ID', this.secretsKey.key, 'encrypt');
    bindUploadGrants(this.api, this.uploads);

    this.controlApi = new ControlApi(this, 'ControlApi', { handler: this.api.function });

    this.reconcile = new FleetFunction(this, 'Reconcile', {
      entry: 'functions/reconcile/index.ts',
      description: 'Plans, applies and checks the waves of a reconcile run (one function, a step per task)',
      memorySize: 512,
      timeout: Duration.minutes(2),
      environment: HEARTBEAT_ALLOWANCE,
    });
    // Hosts: the reconcile registers the hosts it launches and records the ones it terminates.
    bindTable(this.reconcile, 'EVENTS_TABLE', this.tables.events, 'readWrite');
    bindTable(this.reconcile, 'HOSTS_TABLE', this.tables.hosts, 'readWrite');
    bindTable(this.reconcile, 'DOCUMENTS_TABLE', this.tables.documents, 'readWrite');
    bindBucket(this.reconcile, 'BUCKET', bucket, {
      get: [`${PLAN_PREFIX}*`],
      put: [`${PLAN_PREFIX}*`],
      reason:
        'Plans too large for a DynamoDB item go to plans/<planId>.json; the plan id is made at run time.',
    });
    // A launched host's secret is made, encrypted into its projection (as the api does) and read back on retry.
    bindKey(this.reconcile, 'SECRETS_KEY_ID', this.secretsKey.key, 'encrypt');
    bindKey(this.reconcile, 'SECRETS_KEY_ID', this.secretsKey.key, 'decrypt');

    this.fanout = new StateFanout(this, 'StateFanout', {
      bucket,
      ...(props.stateTopicShards === undefined ? {} : { shardCount: props.stateTopicShards }),
    });
    this.fanout.grantPublish(this.reconcile);
    this.fanout.grantSign(this.reconcile);
    this.fanout.grantManageInboxes(this.reconcile);
    this.fanout.grantReceive(this.hostRole.role);

    this.hostSecrets = new HostSecretParameters(this, 'HostSecretParameters');
    this.hostSecrets.grantManage(this.reconcile);
    this.hostSecrets.grantReadOwn(this.hostRole.role);

    bindFleetControl(this.reconcile, this.hostRole);
    this.agentArtifactUrl = props.agentArtifactUrl ?? `s3://${bucket.bucketName}/${AGENT_ARTIFACT_KEY}`;
    if (props.agentArtifactUrl === undefined) {
      this.agentArtifact = new AgentArtifact(this, 'AgentArtifact', {
        bucket,
        prefix: AGENT_ARTIFACT_PREFIX,
      });
      this.hostRole.grantAgentArtifacts(bucket, AGENT_ARTIFACT_PREFIX);
    } else {
      this.hostRole.grantAgentArtifactUrl(props.agentArtifactUrl);
    }
    this.reconcile.function.addEnvironment('AGENT_ARTIFACT_URL', this.agentArtifactUrl);
    const launchSettings: [string, string | undefined][] = [
      ['SUBNET_IDS', props.hostSubnetIds?.join(',')],
      ['SECURITY_GROUP_IDS', props.hostSecurityGroupIds?.join(',')],
      ['DEFAULT_IMAGE', props.hostImageId ?? DEFAULT_HOST_IMAGE.getImage(this).imageId],
    ];
    for (const [name, value] of launchSettings) {
      if (value) this.reconcile.function.addEnvironment(name, value);
    }
    this.reconcileMachine = new ReconcileStateMachine(this, 'ReconcileMachine', {
      reconcileFunction: this.reconcile.function,
    });
    this.alarms = new AlarmTopic(this, 'Alarms', {
      ...(props.alarmEmail ? { alarmEmail: props.alarmEmail } : {}),
    });
    bindTopicPublish(this.reconcile, ALARM_TOPIC_ENV, this.alarms.topic);
    bindTopicPublish(this.api, ALARM_TOPIC_ENV, this.alarms.topic);
    this.api.function.addEnvironment(
      'RECONCILE_STATE_MACHINE_ARN',
      this.reconcileMachine.stateMachine.stateMachineArn,
    );
    this.reconcileMachine.stateMachine.grantStartExecution(this.api.function);
    // A host reporting itself or a service failed starts its group's reconcile without waiting for the monitor.
    this.ingest.function.addEnvironment(
      'RECONCILE_STATE_MACHINE_ARN',
      this.reconcileMachine.stateMachine.stateMachineArn,
    );
    this.reconcileMachine.stateMachine.grantStartExecution(this.ingest.function);
    this.monitor = new Monitor(this, 'Monitor', {
      tables: this.tables,
      reconcileStateMachine: this.reconcileMachine.stateMachine,
      alarmTopic: this.alarms.topic,
      environment: HEARTBEAT_ALLOWANCE,
      ...(props.monitorRateMinutes === undefined ? {} : { rate: Duration.minutes(props.monitorRateMinutes) }),
    });
    const functions = {
      Ingest: this.ingest.function,
      Api: this.api.function,
      Reconcile: this.reconcile.function,
      Monitor: this.monitor.function.function,
    };
    this.operationsAlarms = new OperationsAlarms(this, 'OperationsAlarms', {
      alarmTopic: this.alarms.topic,
      ingestDeadLetterQueue: this.ingestQueue.deadLetterQueue,
      reconcileStateMachine: this.reconcileMachine.stateMachine,
      functions,
      monitorFunction: this.monitor.function.function,
      ...(props.monitorRateMinutes === undefined
        ? {}
        : { monitorPeriod: Duration.minutes(props.monitorRateMinutes) }),
    });
    this.dashboard = new OperationsDashboard(this, 'Dashboard', {
      ingestQueue: this.ingestQueue.queue,
      reconcileStateMachine: this.reconcileMachine.stateMachine,
      functions,
      tables: [this.tables.events, this.tables.hosts, this.tables.documents],
    });

    this.acknowledgeBucketNotificationsHandler();

    new CfnOutput(this, 'SnapshotBucketName', { value: bucket.bucketName });
    new CfnOutput(this, 'UploadDomainName', { value: this.uploads.distribution.distributionDomainName });
    new CfnOutput(this, 'UploadKeyPairId', { value: this.uploads.publicKey.publicKeyId });
    new CfnOutput(this, 'HostInstanceProfileName', {
      value: this.hostRole.instanceProfile.instanceProfileName,
    });
    new CfnOutput(this, 'ApiUrl', { value: this.controlApi.api.url });
    new CfnOutput(this, 'OpenApiUrl', { value: this.controlApi.api.urlForPath('/openapi.json') });
    new CfnOutput(this, 'EventsTableName', { value: this.tables.events.tableName });
    new CfnOutput(this, 'HostsTableName', { value: this.tables.hosts.tableName });
    new CfnOutput(this, 'DocumentsTableName', { value: this.tables.documents.tableName });
    new CfnOutput(this, 'ReconcileStateMachineArn', {
      value: this.reconcileMachine.stateMachine.stateMachineArn,
    });
    new CfnOutput(this, 'SecretsKeyArn', { value: this.secretsKey.key.keyArn });
    new CfnOutput(this, 'StateTopicArns', { value: this.fanout.topics.map((t) => t.topicArn).join(',') });
    new CfnOutput(this, 'StateSigningKeyArn', { value: this.fanout.signingKey.keyArn });
    new CfnOutput(this, 'AgentArtifactUrl', { value: this.agentArtifactUrl });
    new CfnOutput(this, 'AlarmTopicArn', { value: this.alarms.topic.topicArn });
    new CfnOutput(this, 'IngestDeadLetterQueueUrl', { value: this.ingestQueue.deadLetterQueue.queueUrl });
  }

  /**
   * `addEventNotification` adds a stack-wide singleton Lambda (CDK's own, not ours) that writes the bucket's
   * notification configuration at deploy time.
   */
  private acknowledgeBucketNotificationsHandler(): void {
    const handler = this.node.children.find((child) =>
      child.node.id.startsWith('BucketNotificationsHandler'),
    );
    if (!handler) throw new Error('expected the S3 bucket-notifications handler in the stack');
    acknowledge(handler, {
      'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]':
        'CDK-provided deploy-time handler that configures S3 bucket notifications; its role and logging are fixed by aws-cdk-lib.',
    });
  }
}
