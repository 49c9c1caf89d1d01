import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SNSClient } from '@aws-sdk/client-sns';
import { SQSClient } from '@aws-sdk/client-sqs';
import { createApiHandler } from '../../functions/api/handler.ts';
import { generatedDocuments } from '../../functions/api/openapi.ts';
import { DEFAULT_INGEST_CONFIG } from '../../functions/ingest/config.ts';
import { createIngestHandler } from '../../functions/ingest/handler.ts';
import { buildApiDeps, buildIngestDeps, type WiringOptions } from '../../functions/wiring.ts';
import { LocalSecretCipher } from '../../shared/adapters/local-cipher.ts';
import { uploadGrantIssuer } from '../../shared/cdn-policy.ts';
import type { IngestConfig } from '../../shared/ingest.ts';
import { MetricCounter } from '../../shared/telemetry.ts';
import { type ApiHandler, type ApiServer, startApiServer } from './api-server.ts';
import { type CdnStandIn, localUploadSigningKey, startCdnStandIn } from './cdn-stand-in.ts';
import {
  type LocalControlPlane,
  type LocalControlPlaneOptions,
  startLocalControlPlane,
} from './control-plane.ts';
import { type Emulators, localClientConfig, startEmulators } from './emulators.ts';
import { type S3NotificationBridge, startS3NotificationBridge } from './s3-notification-bridge.ts';
import { type SqsLambdaPoller, startSqsLambdaPoller } from './sqs-lambda-poller.ts';
import { readOrCreateSecret, statePaths } from './state-dir.ts';

export interface LocalCloudOptions {
  /** Everything persists here (tests: a temporary folder). */
  stateDir: string;
  /** Run the ingest poller with the real ingest handler; default true. */
  ingest?: boolean;
  /** Serve the real api handler over HTTP; default true. */
  withApi?: boolean;
  /** 0 (default) picks a free port. */
  apiPort?: number;
  /** Ingest pollers in parallel (Lambda's concurrency); default 2. */
  pollerConcurrency?: number;
  /** Long-poll wait of the ingest pollers; default 20 s. */
  pollerWaitSeconds?: number;
  /** Ingest queue visibility timeout (how long a failed record stays hidden); default 30 s. */
  visibilityTimeoutSeconds?: number;
  maxReceiveCount?: number;
  ingestConfig?: Partial<IngestConfig>;
  bucket?: string;
  region?: string;
  /** Benchmarks count consumed capacity and S3 requests through these. */
  onCapacity?: WiringOptions['onCapacity'];
  onS3Request?: WiringOptions['onS3Request'];
  /** Operational messages (errors of the bridge, the poller, the api handler); default console.error. */
  log?: (message: string, error?: unknown) => void;
  /** How the local fleet's agents post snapshots: to S3 (default) or through the CDN stand-in, as on AWS. */
  agentUploads?: 's3' | 'cdn';
  /** Tuning and hooks of the reconcile loop and the local fleet (see LocalControlPlaneOptions). */
  controlPlane?: Pick<
    LocalControlPlaneOptions,
    | 'reconcilePollSeconds'
    | 'agentHeartbeatSeconds'
    | 'agentPollSeconds'
    | 'onAgentOutput'
    | 'onAgentExit'
    | 'onRunSettled'
  >;
}

export interface LocalEndpoints {
  /** Absent without `withApi`. */
  api?: string;
  token: string;
  /** Where hosts PUT snapshots: the notification bridge in front of fauxqs's S3 (path-style). */
  s3: string;
  /** The upload distribution's stand-in: signed-policy PUTs to `<cdn>/snapshots/<hostId>/<seq>.json`. */
  cdn: string;
  sqs: string;
  sns: string;
  dynamodb: string;
  bucket: string;
  region: string;
  ingestQueueUrl: string;
  ingestDlqUrl: string;
  eventsTable: string;
  hostsTable: string;
  documentsTable: string;
}

export interface LocalClients {
  /** Through the bridge: a put under snapshots/ notifies the ingest queue. */
  s3: S3Client;
  /** Straight to fauxqs: nothing is notified. */
  s3Direct: S3Client;
  sqs: SQSClient;
  sns: SNSClient;
  dynamodb: DynamoDBClient;
}

export interface LocalCloud {
  endpoints: LocalEndpoints;
  clients: LocalClients;
  emulators: Emulators;
  cipher: LocalSecretCipher;
  /** The real api handler (also when it is not served over HTTP). */
  apiHandler: ApiHandler;
  /** Reconcile runs, the fleet of agent processes, the state fan-out. */
  controlPlane: LocalControlPlane;
  ingestPoller?: SqsLambdaPoller;
  cdn: CdnStandIn;
  /** What the functions counted (the port Powertools Metrics binds on AWS): snapshots, events, rollouts, … */
  telemetry: MetricCounter;
  /** Stops the servers and pollers it started, in reverse order; resolves when all have stopped. */
  stop(): Promise<void>;
}

/** The embedded cloud without any hosts: emulators, S3 notifications, the ingest "Lambda" and the API. */
export async function startLocalCloud(options: LocalCloudOptions): Promise<LocalCloud> {
  const log = options.log ?? ((message: string, error?: unknown) => console.error(message, error ?? ''));
  const paths = statePaths(options.stateDir);
  const stack: (() => Promise<void>)[] = [];
  const stop = async () => {
    for (const step of stack.reverse().splice(0)) {
      await step().catch((error: unknown) => log('local cloud: a component failed to stop', error));
    }
  };
  try {
    const [emulators, token, cipher] = await Promise.all([
      startEmulators({
        stateDir: options.stateDir,
        ...(options.region ? { region: options.region } : {}),
        ...(options.bucket ? { bucket: options.bucket } : {}),
        ...(options.visibilityTimeoutSeconds
          ? { visibilityTimeoutSeconds: options.visibilityTimeoutSeconds }
          : {}),
        ...(options.maxReceiveCount ? { maxReceiveCount: options.maxReceiveCount } : {}),
      }),
      readOrCreateSecret(paths.token),
      LocalSecretCipher.fromKeyFile(paths.masterKey),
    ]);
    stack.push(() => emulators.stop());
    const { region } = emulators;
    const aws = localClientConfig(emulators.awsEndpoint, region);
    const s3Direct = new S3Client({ ...aws, forcePathStyle: true });
    const sqs = new SQSClient(aws);
    const sns = new SNSClient(aws);
    const dynamodb = new DynamoDBClient(localClientConfig(emulators.dynamodbEndpoint, region));
    stack.push(async () => {
      for (const client of [s3Direct, sqs, sns, dynamodb]) client.destroy();
    });

    const bridge: S3NotificationBridge = await startS3NotificationBridge({
      upstream: emulators.awsEndpoint,
      s3: s3Direct,
      sqs,
      queueUrl: emulators.ingestQueue.url,
      region,
      bucket: emulators.bucket,
      onError: (error, write) => log(`s3 bridge: no event sent for s3://${write.bucket}/${write.key}`, error),
    });
    stack.push(() => bridge.stop());
    const s3 = new S3Client({ ...localClientConfig(bridge.endpoint, region), forcePathStyle: true });
    stack.push(async () => s3.destroy());

    const uploadKey = await localUploadSigningKey(paths.uploadSigningKey);
    const cdn = await startCdnStandIn({
      s3,
      bucket: emulators.bucket,
      trustedKeys: new Map([[uploadKey.keyPairId, uploadKey.publicKey]]),
      onError: (error, key) => log(`cdn stand-in: ${key} not written`, error),
    });
    stack.push(() => cdn.stop());
    const uploadGrants = uploadGrantIssuer({ url: cdn.url, loadKey: async () => uploadKey });

    const telemetry = new MetricCounter();
    const wiring: WiringOptions = {
      telemetry,
      dynamodb,
      s3: s3Direct,
      bucket: emulators.bucket,
      eventsTable: emulators.tables.events,
      hostsTable: emulators.tables.hosts,
      cipher,
      ...(options.ingestConfig ? { config: options.ingestConfig } : {}),
      ...(options.onCapacity ? { onCapacity: options.onCapacity } : {}),
      ...(options.onS3Request ? { onS3Request: options.onS3Request } : {}),
    };
    const documentsTable = emulators.tables.documents;
    if (!documentsTable) throw new Error('the emulators created no documents table');
    let apiHandler: ApiHandler | undefined;
    const controlPlane = await startLocalControlPlane({
      stateDir: options.stateDir,
      region,
      awsEndpoint: emulators.awsEndpoint,
      s3Endpoint: bridge.endpoint,
      bucket: emulators.bucket,
      clients: { s3Direct, sqs, sns, dynamodb },
      tables: { events: emulators.tables.events, hosts: emulators.tables.hosts, documents: documentsTable },
      heartbeatCoalesceSeconds:
        options.ingestConfig?.heartbeatCoalesceSeconds ?? DEFAULT_INGEST_CONFIG.heartbeatCoalesceSeconds,
      api: () => {
        if (!apiHandler) throw new Error('the api handler is not built yet');
        return apiHandler;
      },
      ...(options.agentUploads === 'cdn' ? { cdnUploads: { url: cdn.url, grants: uploadGrants } } : {}),
      telemetry,
      ...options.controlPlane,
    });
    // Stopped after the api and pollers (the stack unwinds in reverse), before the clients it uses.
    stack.push(() => controlPlane.stop());
    apiHandler = createApiHandler(
      buildApiDeps({
        ...wiring,
        documentsTable,
        reconcile: controlPlane.reconcile,
        uploadGrants,
        published: generatedDocuments(),
      }),
    );

    let ingestPoller: SqsLambdaPoller | undefined;
    if (options.ingest ?? true) {
      const poller = startSqsLambdaPoller({
        sqs,
        queueUrl: emulators.ingestQueue.url,
        queueArn: emulators.ingestQueue.arn,
        region,
        handler: createIngestHandler({
          ...buildIngestDeps({ ...wiring, documentsTable }),
          starter: controlPlane.reconcile,
        }),
        concurrency: options.pollerConcurrency ?? 2,
        waitTimeSeconds: options.pollerWaitSeconds ?? 20,
        onError: (error, stage) => log(`ingest poller: ${stage} failed`, error),
      });
      ingestPoller = poller;
      stack.push(() => poller.stop());
    }

    let api: ApiServer | undefined;
    if (options.withApi ?? true) {
      const server = await startApiServer({
        handler: apiHandler,
        token,
        port: options.apiPort ?? 0,
        onError: (error, event) => log(`api: ${event.httpMethod} ${event.path} threw`, error),
      });
      api = server;
      stack.push(() => server.stop());
    }

    const endpoints: LocalEndpoints = {
      ...(api ? { api: api.url } : {}),
      token,
      s3: bridge.endpoint,
      cdn: cdn.url,
      sqs: emulators.awsEndpoint,
      sns: emulators.awsEndpoint,
      dynamodb: emulators.dynamodbEndpoint,
      bucket: emulators.bucket,
      region,
      ingestQueueUrl: emulators.ingestQueue.url,
      ingestDlqUrl: emulators.ingestDlq.url,
      eventsTable: emulators.tables.events,
      hostsTable: emulators.tables.hosts,
      documentsTable,
    };
    return {
      endpoints,
      clients: { s3, s3Direct, sqs, sns, dynamodb },
      emulators,
      cipher,
      apiHandler,
      controlPlane,
      ...(ingestPoller ? { ingestPoller } : {}),
      cdn,
      telemetry,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
