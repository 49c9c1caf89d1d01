import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { createIngestHandler } from '../functions/ingest/handler.ts';
import { buildIngestDeps } from '../functions/wiring.ts';
import { startLocalCloud } from '../infra/local/cloud.ts';
import { startSqsLambdaPoller } from '../infra/local/sqs-lambda-poller.ts';
import { snapshotKey } from '../shared/keys.ts';
import { signSnapshot } from '../shared/signing.ts';
import { apiEvent } from '../test/support/cloud.ts';
import { machineState } from '../test/support/fixtures.ts';
import { emit, round } from './output.ts';

/**
 * Snapshots per second through SQS → ingest → DynamoDB on the embedded cloud, next to the floor: the same S3
 * GETs and DynamoDB reads and writes issued raw, at the same concurrency, with no queue, validation or logic.
 * Both paths first run once untimed on hosts of their own: whichever went first would otherwise also pay for
 * JIT compilation, new connections and heap growth, which a warm function does not.
 */
export async function benchIngestThroughput(
  options = { hosts: 100, snapshots: 2000, rounds: 2, pollers: 2, warmupHosts: 30, warmupSnapshots: 600 },
): Promise<void> {
  const stateDir = await mkdtemp(join(tmpdir(), 'fleetfold-bench-'));
  const cloud = await startLocalCloud({ stateDir, ingest: false, withApi: false, log: () => {} });
  try {
    const { s3Direct: s3, sqs, dynamodb } = cloud.clients;
    const { bucket, eventsTable, hostsTable } = cloud.endpoints;
    const register = async (prefix: string, count: number) => {
      const secrets: string[] = [];
      for (let h = 0; h < count; h += 1) {
        const response = await cloud.apiHandler(
          apiEvent('POST', '/hosts', {
            body: {
              hostId: `${prefix}-${h}`,
              group: 'demo',
              hostType: 'call-router',
              roles: ['call-router'],
            },
          }),
        );
        secrets.push(JSON.parse(response.body).secret);
      }
      return secrets;
    };
    const secrets = await register('cr', options.hosts);
    const warmupSecrets = await register('warm', options.warmupHosts);

    // Every snapshot changes the host's state (a new config value), so each one costs the full write path.
    const snapshotsOf = (prefix: string, hostSecrets: string[], count: number) =>
      Array.from({ length: count }, (_, i) => {
        const h = i % hostSecrets.length;
        const seq = Math.floor(i / hostSecrets.length) + 1;
        const state = machineState({
          config: { version: `c${seq}`, values: { 'sip.port': '5060', rev: `${seq}` } },
        });
        const snapshot = signSnapshot(hostSecrets[h] as string, {
          hostId: `${prefix}-${h}`,
          seq,
          signedAt: new Date().toISOString(),
          state,
        });
        return {
          key: snapshotKey(`${prefix}-${h}`, seq),
          hostId: `${prefix}-${h}`,
          body: JSON.stringify(snapshot),
        };
      });
    const objects = snapshotsOf('cr', secrets, options.snapshots);
    const warmupObjects = snapshotsOf('warm', warmupSecrets, options.warmupSnapshots);
    await inParallel([...warmupObjects, ...objects], 16, (o) =>
      s3.send(new PutObjectCommand({ Bucket: bucket, Key: o.key, Body: o.body })),
    );
    const eventTime = new Date().toISOString();
    const enqueue = async (items: typeof objects) => {
      for (let i = 0; i < items.length; i += 10) {
        await sqs.send(
          new SendMessageBatchCommand({
            QueueUrl: cloud.endpoints.ingestQueueUrl,
            Entries: items.slice(i, i + 10).map((o, j) => ({
              Id: `${j}`,
              MessageBody: JSON.stringify({
                Records: [
                  {
                    eventVersion: '2.1',
                    eventSource: 'aws:s3',
                    awsRegion: cloud.endpoints.region,
                    eventTime,
                    eventName: 'ObjectCreated:Put',
                    s3: { bucket: { name: bucket }, object: { key: o.key, size: Buffer.byteLength(o.body) } },
                  },
                ],
              }),
            })),
          }),
        );
      }
    };

    const deps = buildIngestDeps({ dynamodb, s3, bucket, eventsTable, hostsTable, cipher: cloud.cipher });
    let changed = 0;
    const handler = createIngestHandler({ ...deps, report: (s) => (changed += s.outcomes.changed ?? 0) });
    const waitTimeSeconds = 1;
    const ingest = async (count: number) => {
      const poller = startSqsLambdaPoller({
        sqs,
        queueUrl: cloud.endpoints.ingestQueueUrl,
        queueArn: 'arn:aws:sqs:us-east-1:000000000000:fleetfold-ingest',
        region: cloud.endpoints.region,
        handler,
        concurrency: options.pollers,
        waitTimeSeconds,
      });
      while (poller.stats.succeeded + poller.stats.failed < count) await sleep(5);
      await poller.stop();
      return poller.stats.failed;
    };

    // The floor: per snapshot one GetObject, one GetItem and two PutItems, at pollers × batch size in flight.
    const doc = DynamoDBDocumentClient.from(dynamodb);
    const sampleOf = async (hostId: string) =>
      (await doc.send(new GetCommand({ TableName: hostsTable, Key: { hostId } }))).Item;
    const floor = async (
      items: typeof objects,
      tag: string,
      sampleHost: Awaited<ReturnType<typeof sampleOf>>,
    ) => {
      await inParallel(items, options.pollers * 10, async (o, i) => {
        await readBody(s3, bucket, o.key);
        await doc.send(
          new GetCommand({ TableName: hostsTable, Key: { hostId: o.hostId }, ConsistentRead: true }),
        );
        await doc.send(
          new PutCommand({
            TableName: eventsTable,
            Item: { stream: `raw#${tag}${i}`, version: 1, type: 'StateObserved', data: { rev: i } },
            ConditionExpression: 'attribute_not_exists(version)',
          }),
        );
        await doc.send(
          new PutCommand({ TableName: hostsTable, Item: { ...sampleHost, hostId: `raw-${tag}${i}` } }),
        );
      });
    };

    await enqueue(warmupObjects);
    await ingest(warmupObjects.length);
    // stop() abandons the other poller's long poll, which the queue still answers: let it expire before the
    // measured messages arrive, or it would take ten of them to nobody until their visibility timeout.
    const letAbandonedPollExpire = () => sleep(waitTimeSeconds * 1000 + 200);
    await letAbandonedPollExpire();
    await floor(warmupObjects, 'warmup-', await sampleOf('warm-0'));
    changed = 0;

    // The two are timed in alternating rounds over consecutive slices of the snapshots (each host's sequence
    // numbers still arrive in order), so a change in the machine's load while one runs skews both alike.
    let ingestSeconds = 0;
    let rawSeconds = 0;
    let failed = 0;
    const perRound = Math.ceil(options.snapshots / options.rounds);
    for (let pass = 0; pass < options.rounds; pass += 1) {
      const slice = objects.slice(pass * perRound, (pass + 1) * perRound);
      if (slice.length === 0) break;
      await enqueue(slice);
      const started = performance.now();
      failed += await ingest(slice.length);
      ingestSeconds += (performance.now() - started) / 1000;
      await letAbandonedPollExpire();

      const sampleHost = await sampleOf('cr-0');
      const rawStarted = performance.now();
      await floor(slice, `${pass}-`, sampleHost);
      rawSeconds += (performance.now() - rawStarted) / 1000;
    }

    const rate = options.snapshots / ingestSeconds;
    const floorRate = options.snapshots / rawSeconds;
    emit({
      name: 'ingest.throughput',
      value: round(rate, 1),
      unit: 'snapshots/s',
      floor: round(floorRate, 1),
      ratio: round(rate / floorRate, 2),
      snapshots: options.snapshots,
      changed,
      failed,
      concurrency: options.pollers * 10,
    });
  } finally {
    await cloud.stop();
    await rm(stateDir, { recursive: true, force: true });
  }
}

async function readBody(s3: S3Client, bucket: string, key: string): Promise<string> {
  const response = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return (await response.Body?.transformToString()) ?? '';
}

export async function inParallel<T>(
  items: T[],
  width: number,
  work: (item: T, index: number) => Promise<unknown>,
) {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) {
        const index = next++;
        await work(items[index] as T, index);
      }
    }),
  );
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
