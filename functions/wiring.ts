import { DynamoDocumentStore } from '../shared/adapters/dynamo-document-store.ts';
import { DynamoEventStore } from '../shared/adapters/dynamo-event-store.ts';
import { DynamoHostStore } from '../shared/adapters/dynamo-host-store.ts';
import { DynamoUsageCounter } from '../shared/adapters/dynamo-usage-counter.ts';
import { S3Blobs } from '../shared/adapters/s3-blobs.ts';
import { S3SnapshotStore } from '../shared/adapters/s3-snapshot-store.ts';
import type { DynamoDBClient, S3Client, SNSClient } from '../shared/adapters/sdk-clients.ts';
import { SnsAlarmPublisher } from '../shared/adapters/sns-alarm-publisher.ts';
import { CachingCipher } from '../shared/caching-cipher.ts';
import type { UploadGrantIssuer } from '../shared/cdn-policy.ts';
import type { UsageCounter } from '../shared/cost/usage.ts';
import type { HostProvisioner } from '../shared/groups/host-provisioning.ts';
import type {
  AlarmPublisher,
  DocumentStore,
  FleetPort,
  ReconcileStarter,
  StatePublisher,
} from '../shared/groups/ports.ts';
import type { IngestConfig } from '../shared/ingest.ts';
import type { SecretCipher } from '../shared/ports.ts';
import { newHostSecret } from '../shared/signing.ts';
import { countingEventStore, type Telemetry } from '../shared/telemetry.ts';
import type { ApiDeps } from './api/deps.ts';
import { randomIdSuffix } from './api/ids.ts';
import type { PublishedDocuments } from './api/published-documents.ts';
import { reportIngestBatch } from './ingest/batch-metrics.ts';
import { DEFAULT_INGEST_CONFIG } from './ingest/config.ts';
import type { IngestDeps } from './ingest/handler.ts';
import type { MonitorDeps } from './monitor/handler.ts';
import { DocumentPlanStore } from './reconcile/plan-store.ts';
import type { ReconcileDeps, ReconcileSettings } from './reconcile/steps/types.ts';

/** Builds the handlers' dependencies from SDK clients: shared by Lambda (index.ts), local mode and tests. */
export interface WiringOptions {
  dynamodb: DynamoDBClient;
  s3: S3Client;
  bucket: string;
  eventsTable: string;
  hostsTable: string;
  /** Groups, rollouts, desired states and plans; the api (and the reconcile) need it, the ingest does not. */
  documentsTable?: string;
  cipher: SecretCipher;
  config?: Partial<IngestConfig>;
  /** Called with each DynamoDB response's consumed capacity (benchmarks count WRU/RRU this way). */
  onCapacity?: ConstructorParameters<typeof DynamoEventStore>[0]['onCapacity'];
  onS3Request?: ConstructorParameters<typeof S3SnapshotStore>[0]['onRequest'];
  /**
   * Where the functions count what they did (Powertools Metrics on AWS, a MetricCounter locally): the event
   * store counts the events it appends, the ingest its batches. None: nothing is counted.
   */
  telemetry?: Telemetry;
}

function stores(
  options: Pick<WiringOptions, 'dynamodb' | 'eventsTable' | 'hostsTable' | 'onCapacity' | 'telemetry'>,
) {
  const { dynamodb: client, onCapacity, telemetry } = options;
  const events = new DynamoEventStore({ client, tableName: options.eventsTable, onCapacity });
  return {
    events: telemetry ? countingEventStore(events, telemetry) : events,
    hosts: new DynamoHostStore({ client, tableName: options.hostsTable, onCapacity }),
  };
}

export function buildIngestDeps(options: WiringOptions): IngestDeps {
  return {
    ...stores(options),
    snapshots: new S3SnapshotStore({
      client: options.s3,
      bucket: options.bucket,
      onRequest: options.onS3Request,
    }),
    cipher: new CachingCipher(options.cipher),
    config: { ...DEFAULT_INGEST_CONFIG, ...options.config },
    now: () => new Date(),
    ...(options.telemetry ? { report: reportIngestBatch(options.telemetry) } : {}),
    ...(options.documentsTable
      ? { usage: buildUsageCounter({ ...options, documentsTable: options.documentsTable }) }
      : {}),
  };
}

/** The hourly usage counters (shared/cost/usage.ts), kept in the documents table. */
export function buildUsageCounter(
  options: Pick<WiringOptions, 'dynamodb' | 'onCapacity'> & { documentsTable: string },
): DynamoUsageCounter {
  return new DynamoUsageCounter({
    client: options.dynamodb,
    tableName: options.documentsTable,
    onCapacity: options.onCapacity,
  });
}

export function buildDocumentStore(
  options: Pick<WiringOptions, 'dynamodb' | 'onCapacity'> & { documentsTable: string },
): DocumentStore {
  return new DynamoDocumentStore({
    client: options.dynamodb,
    tableName: options.documentsTable,
    onCapacity: options.onCapacity,
  });
}

export type ApiWiringOptions = Omit<WiringOptions, 's3' | 'bucket' | 'config' | 'documentsTable'> & {
  documentsTable: string;
  /** Step Functions in AWS (shared/adapters/sfn-reconcile-starter.ts), in-process locally. */
  reconcile: ReconcileStarter;
  /** The CDN upload path's grants (absent when no signing key is configured). */
  uploadGrants?: UploadGrantIssuer;
  /** Files beside the bundle on Lambda (bundledDocuments), generated in-process locally (generatedDocuments). */
  published: PublishedDocuments;
};

export function buildApiDeps(options: ApiWiringOptions): ApiDeps {
  return {
    ...stores(options),
    published: options.published,
    documents: buildDocumentStore(options),
    usage: buildUsageCounter(options),
    reconcile: options.reconcile,
    cipher: options.cipher,
    now: () => new Date(),
    newSecret: newHostSecret,
    newId: randomIdSuffix,
    ...(options.uploadGrants ? { uploadGrants: options.uploadGrants } : {}),
  };
}

export type ReconcileWiringOptions = Pick<
  WiringOptions,
  'dynamodb' | 's3' | 'bucket' | 'eventsTable' | 'hostsTable' | 'telemetry'
> & {
  documentsTable: string;
  /** EC2 on AWS, the local fleet of agent processes locally. */
  fleet: FleetPort;
  /** Built from the stores: on AWS it registers hosts in them before it stores their secrets in SSM. */
  provisioner: (stores: Pick<ReconcileDeps, 'events' | 'hosts'>) => HostProvisioner;
  publisher: StatePublisher;
  settings: ReconcileSettings;
  /** The topic the reconcile's alarms are published to (AWS and local mode); none: they are only recorded. */
  alarmTopic?: { sns: SNSClient; topicArn: string };
};

/** The reconcile's dependencies: the same stores and plan store on AWS (index.ts) and in local mode. */
export function buildReconcileDeps(
  options: ReconcileWiringOptions,
): ReconcileDeps & { alarms?: AlarmPublisher; usage?: UsageCounter } {
  const documents = buildDocumentStore(options);
  const { events, hosts } = stores(options);
  return {
    events,
    hosts,
    documents,
    plans: new DocumentPlanStore({
      documents,
      blobs: new S3Blobs({ client: options.s3, bucket: options.bucket }),
    }),
    fleet: options.fleet,
    provisioner: options.provisioner({ events, hosts }),
    publisher: options.publisher,
    settings: options.settings,
    usage: buildUsageCounter(options),
    now: () => new Date(),
    // Not a member of ReconcileDeps: the steps hand their deps to raiseAlarm, which reads it from there.
    ...(options.alarmTopic ? { alarms: new SnsAlarmPublisher(options.alarmTopic) } : {}),
    ...(options.telemetry ? { telemetry: options.telemetry } : {}),
  };
}

export type MonitorWiringOptions = Pick<
  WiringOptions,
  'dynamodb' | 'eventsTable' | 'hostsTable' | 'onCapacity' | 'telemetry'
> & {
  documentsTable: string;
  reconcile: ReconcileStarter;
  tickSeconds: number;
  heartbeatCoalesceSeconds: number;
  /** The topic the monitor's alarms are published to, as the reconcile's; none: they are only recorded. */
  alarmTopic?: { sns: SNSClient; topicArn: string };
} & Pick<MonitorDeps, 'instances'>;

/** The monitor's dependencies: the same stores on AWS (index.ts) and in local mode. */
export function buildMonitorDeps(options: MonitorWiringOptions): MonitorDeps {
  return {
    ...stores(options),
    documents: buildDocumentStore(options),
    reconcile: options.reconcile,
    usage: buildUsageCounter(options),
    tickSeconds: options.tickSeconds,
    heartbeatCoalesceSeconds: options.heartbeatCoalesceSeconds,
    ...(options.alarmTopic ? { alarms: new SnsAlarmPublisher(options.alarmTopic) } : {}),
    ...(options.instances ? { instances: options.instances } : {}),
    ...(options.telemetry ? { telemetry: options.telemetry } : {}),
    now: () => new Date(),
  };
}
