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
 */
export async function benchIngestThroughput(
  options = { hosts: 100, snapshots: 2000, pollers: 2 },
): Promise<void> {
  const stateDir = await mkdtemp(join(tmpdir(), 'fleetfold-bench-'));
  const cloud = await startLocalCloud({ stateDir, ingest: false, withApi: false, log: () => {} });
  try {
    const { s3Direct: s3, sqs, dynamodb } = cloud.clients;
    const { bucket, eventsTable, hostsTable } = cloud.endpoints;
    const secrets: string[] = [];
    for (let h = 0; h < options.hosts; h += 1) {
      const response = await cloud.apiHandler(
        apiEvent('POST', '/hosts', {
          body: { hostId: `cr-${h}`, group: 'demo', hostType: 'call-router', roles: ['call-router'] },
        }),
      );
      secrets.push(JSON.parse(response.body).secret);
    }

    // Every snapshot changes the host's state (a new config value), so each one costs the full write path.
    const objects = Array.from({ length: options.snapshots }, (_, i) => {
      const h = i % options.hosts;
      const seq = Math.floor(i / options.hosts) + 1;
      const state = machineState({
        config: { version: `c${seq}`, values: { 'sip.port': '5060', rev: `${seq}` } },
      });
      const snapshot = signSnapshot(secrets[h] as string, {
        hostId: `cr-${h}`,
        seq,
        signedAt: new Date().toISOString(),
        state,
      });
      return { key: snapshotKey(`cr-${h}`, seq), body: JSON.stringify(snapshot) };
    });
    await inParallel(objects, 16, (o) =>
      s3.send(new PutObjectCommand({ Bucket: bucket, Key: o.key, Body: o.body })),
    );
    const eventTime = new Date().toISOString();
    for (let i = 0; i < objects.length; i += 10) {
      await sqs.send(
        new SendMessageBatchCommand({
          QueueUrl: cloud.endpoints.ingestQueueUrl,
          Entries: objects.slice(i, i + 10).map((o, j) => ({
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

    const deps = buildIngestDeps({ dynamodb, s3, bucket, eventsTable, hostsTable, cipher: cloud.cipher });
    let changed = 0;
    const handler = createIngestHandler({ ...deps, report: (s) => (changed += s.outcomes.changed ?? 0) });
    const started = performance.now();
    const poller = startSqsLambdaPoller({
      sqs,
      queueUrl: cloud.endpoints.ingestQueueUrl,
      queueArn: 'arn:aws:sqs:us-east-1:000000000000:fleetfold-ingest',
      region: cloud.endpoints.region,
      handler,
      concurrency: options.pollers,
      waitTimeSeconds: 1,
    });
    while (poller.stats.succeeded + poller.stats.failed < options.snapshots) await sleep(5);
    const ingestSeconds = (performance.now() - started) / 1000;
    await poller.stop();

    // The floor: per snapshot one GetObject, one GetItem and two PutItems, at pollers × batch size in flight.
    const doc = DynamoDBDocumentClient.from(dynamodb);
    const sampleHost = (await doc.send(new GetCommand({ TableName: hostsTable, Key: { hostId: 'cr-0' } })))
      .Item;
    const rawStarted = performance.now();
    await inParallel(objects, options.pollers * 10, async (o, i) => {
      await readBody(s3, bucket, o.key);
      await doc.send(
        new GetCommand({
          TableName: hostsTable,
          Key: { hostId: `cr-${i % options.hosts}` },
          ConsistentRead: true,
        }),
      );
      await doc.send(
        new PutCommand({
          TableName: eventsTable,
          Item: { stream: `raw#${i}`, version: 1, type: 'StateObserved', data: { rev: i } },
          ConditionExpression: 'attribute_not_exists(version)',
        }),
      );
      await doc.send(new PutCommand({ TableName: hostsTable, Item: { ...sampleHost, hostId: `raw-${i}` } }));
    });
    const rawSeconds = (performance.now() - rawStarted) / 1000;

    const rate = options.snapshots / ingestSeconds;
    const floor = options.snapshots / rawSeconds;
    emit({
      name: 'ingest.throughput',
      value: round(rate, 1),
      unit: 'snapshots/s',
      floor: round(floor, 1),
      ratio: round(rate / floor, 2),
      snapshots: options.snapshots,
      changed,
      failed: poller.stats.failed,
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
