import { mkdir } from 'node:fs/promises';
import { Server } from 'node:net';
import { SetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { type FauxqsServer, startFauxqs } from 'fauxqs';
import { DEFAULT_TABLE_NAMES, startDynalite } from '../../shared/adapters/dynalite.ts';
import type { TableNames } from '../../shared/adapters/table-schemas.ts';
import { statePaths } from './state-dir.ts';

export const LOCAL_REGION = 'us-east-1';
export const LOCAL_ACCOUNT_ID = '000000000000';

export interface EmulatorOptions {
  /** Everything persists under this folder; see statePaths(). */
  stateDir: string;
  region?: string;
  /** Default `fleetfold-snapshots`. */
  bucket?: string;
  /** Default `fleetfold-ingest`; its DLQ is `<name>-dlq`. */
  ingestQueue?: string;
  /** Receives before a message moves to the DLQ; default 5. */
  maxReceiveCount?: number;
  /** Default 30 s, as a Lambda event source wants at least the function timeout. */
  visibilityTimeoutSeconds?: number;
  tables?: TableNames;
  /** 0 (default) picks free ports. */
  fauxqsPort?: number;
  dynamodbPort?: number;
}

export interface QueueRef {
  name: string;
  url: string;
  arn: string;
}

export interface Emulators {
  region: string;
  /** fauxqs: S3, SQS and SNS on one endpoint. */
  awsEndpoint: string;
  dynamodbEndpoint: string;
  bucket: string;
  ingestQueue: QueueRef;
  ingestDlq: QueueRef;
  tables: TableNames;
  fauxqs: FauxqsServer;
  stop(): Promise<void>;
}

/**
 * Starts fauxqs (S3/SQS/SNS) and dynalite (DynamoDB) in this process, persisted under the state folder, and
 * makes sure the bucket, the ingest queue with its DLQ and the tables exist (all idempotent).
 */
export async function startEmulators(options: EmulatorOptions): Promise<Emulators> {
  const paths = statePaths(options.stateDir);
  const region = options.region ?? LOCAL_REGION;
  const bucket = options.bucket ?? 'fleetfold-snapshots';
  const queueName = options.ingestQueue ?? 'fleetfold-ingest';
  await Promise.all([paths.dynamodb, paths.sqs, paths.s3].map((dir) => mkdir(dir, { recursive: true })));

  const [fauxqsStart, dynamoStart] = await Promise.allSettled([
    onLoopbackOnly(() =>
      startFauxqs({
        port: options.fauxqsPort ?? 0,
        logger: false,
        defaultRegion: region,
        dataDir: paths.sqs,
        s3StorageDir: paths.s3,
      }),
    ),
    startDynalite({
      path: paths.dynamodb,
      port: options.dynamodbPort ?? 0,
      tables: options.tables ?? DEFAULT_TABLE_NAMES,
    }),
  ]);
  if (fauxqsStart.status === 'rejected' || dynamoStart.status === 'rejected') {
    if (fauxqsStart.status === 'fulfilled') await fauxqsStart.value.stop();
    if (dynamoStart.status === 'fulfilled') await dynamoStart.value.stop();
    throw fauxqsStart.status === 'rejected'
      ? fauxqsStart.reason
      : (dynamoStart as PromiseRejectedResult).reason;
  }
  const fauxqs = fauxqsStart.value;
  const dynamo = dynamoStart.value;
  const awsEndpoint = `http://127.0.0.1:${fauxqs.port}`;
  const stop = async () => {
    await Promise.allSettled([fauxqs.stop(), dynamo.stop()]);
  };

  try {
    // setup() keeps what exists and creates what is missing, so a restart against persisted state is a no-op.
    const dlqName = `${queueName}-dlq`;
    const redrivePolicy = JSON.stringify({
      deadLetterTargetArn: `arn:aws:sqs:${region}:${LOCAL_ACCOUNT_ID}:${dlqName}`,
      maxReceiveCount: options.maxReceiveCount ?? 5,
    });
    fauxqs.setup({
      buckets: [bucket],
      queues: [
        { name: dlqName, region, attributes: { MessageRetentionPeriod: '1209600' } },
        {
          name: queueName,
          region,
          attributes: {
            VisibilityTimeout: String(options.visibilityTimeoutSeconds ?? 30),
            RedrivePolicy: redrivePolicy,
          },
        },
      ],
    });
    // fauxqs resolves queue URLs by region and name, ignoring host and port, but a persisted queue keeps the
    // URL of the port it was created on: hand out one that points at this run's port.
    const ref = (name: string): QueueRef => ({
      name,
      url: `${awsEndpoint}/${LOCAL_ACCOUNT_ID}/${name}`,
      arn: `arn:aws:sqs:${region}:${LOCAL_ACCOUNT_ID}:${name}`,
    });
    const ingestQueue = ref(queueName);
    const ingestDlq = ref(dlqName);
    // A persisted queue keeps its old attributes: bring the redrive policy up to date as AWS would on deploy.
    const sqs = new SQSClient(localClientConfig(awsEndpoint, region));
    try {
      await sqs.send(
        new SetQueueAttributesCommand({
          QueueUrl: ingestQueue.url,
          Attributes: {
            VisibilityTimeout: String(options.visibilityTimeoutSeconds ?? 30),
            RedrivePolicy: redrivePolicy,
          },
        }),
      );
    } finally {
      sqs.destroy();
    }
    return {
      region,
      awsEndpoint,
      dynamodbEndpoint: dynamo.endpoint,
      bucket,
      ingestQueue,
      ingestDlq,
      tables: dynamo.tables,
      fauxqs,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Any credentials do for the emulators, but the SDK insists on having some. */
export function localClientConfig(endpoint: string, region: string = LOCAL_REGION) {
  return {
    endpoint,
    region,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  };
}

/**
 * fauxqs's startFauxqs() always listens on 0.0.0.0 (its `host` option only names the host in queue URLs).
 * An emulator without authentication must not be reachable from the network, so while it starts, a listen
 * on the wildcard address is narrowed to loopback. Nothing else in this process listens on 0.0.0.0.
 */
async function onLoopbackOnly<T>(start: () => Promise<T>): Promise<T> {
  const original = Server.prototype.listen;
  Server.prototype.listen = function (this: Server, ...args: unknown[]) {
    const [first] = args;
    if (first && typeof first === 'object' && (first as { host?: string }).host === '0.0.0.0') {
      args[0] = { ...(first as object), host: '127.0.0.1' };
    }
    return (original as (...a: unknown[]) => Server).apply(this, args);
  } as typeof Server.prototype.listen;
  try {
    return await start();
  } finally {
    Server.prototype.listen = original;
  }
}
