import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { createIngestHandler } from '../functions/ingest/handler.ts';
import { buildIngestDeps } from '../functions/wiring.ts';
import { startLocalCloud } from '../infra/local/cloud.ts';
import { localClientConfig } from '../infra/local/emulators.ts';
import { startSqsLambdaPoller } from '../infra/local/sqs-lambda-poller.ts';
import { capacityMeter } from '../shared/adapters/capacity.ts';
import { DynamoEventStore } from '../shared/adapters/dynamo-event-store.ts';
import { hostStream } from '../shared/events.ts';
import { snapshotKey } from '../shared/keys.ts';
import type { MachineState } from '../shared/schemas.ts';
import { signSnapshot } from '../shared/signing.ts';
import { apiEvent } from '../test/support/cloud.ts';
import { machineState } from '../test/support/fixtures.ts';
import { emit, round } from './output.ts';
import { HOURS_PER_MONTH, US_EAST_1 as PRICE } from './prices.ts';
import { RequestCounter } from './request-counter.ts';

const HOSTS = 50;
const BATCH = 10;
const LAMBDA_GB = 0.25;

interface PerSnapshot {
  s3Put: number;
  s3Get: number;
  s3Other: number;
  sqs: number;
  lambdaInvocations: number;
  lambdaMsPerInvocation: number;
  wru: number;
  rru: number;
  eventLogWrites: number;
}

/**
 * Requests per snapshot by kind, counted from the SDK calls the real pipeline makes (host PUT through the
 * notification bridge, SQS, the ingest handler) and from DynamoDB's consumed capacity; then the monthly cost
 * they imply at list prices.
 */
export async function benchRequestsPerSnapshot(): Promise<void> {
  const stateDir = await mkdtemp(join(tmpdir(), 'fleetfold-bench-'));
  const cloud = await startLocalCloud({ stateDir, ingest: false, withApi: false, log: () => {} });
  const counter = new RequestCounter();
  const meter = capacityMeter();
  try {
    const { region, bucket, eventsTable, hostsTable } = cloud.endpoints;
    // Separate, counted clients: the host's S3 client, and the "Lambda's" S3 and SQS clients.
    const hostS3 = new S3Client({ ...localClientConfig(cloud.endpoints.s3, region), forcePathStyle: true });
    const ingestS3 = new S3Client({
      ...localClientConfig(cloud.emulators.awsEndpoint, region),
      forcePathStyle: true,
    });
    const pollerSqs = new SQSClient(localClientConfig(cloud.emulators.awsEndpoint, region));
    counter.attach(hostS3, 'S3');
    counter.attach(ingestS3, 'S3');
    counter.attach(pollerSqs, 'SQS');
    // The bridge's SendMessage stands for S3's own notification delivery, which SQS bills as a request.
    counter.attach(cloud.clients.sqs, 'SQS');

    const secrets = new Map<string, string>();
    for (let h = 0; h < HOSTS; h += 1) {
      const hostId = `cr-${h}`;
      const response = await cloud.apiHandler(
        apiEvent('POST', '/hosts', {
          body: { hostId, group: 'demo', hostType: 'call-router', roles: ['call-router'] },
        }),
      );
      secrets.set(hostId, JSON.parse(response.body).secret);
    }

    let handlerMs = 0;
    const runPhase = async (seq: number, state: MachineState, heartbeatCoalesceSeconds: number) => {
      const handler = createIngestHandler(
        buildIngestDeps({
          dynamodb: cloud.clients.dynamodb,
          s3: ingestS3,
          bucket,
          eventsTable,
          hostsTable,
          cipher: cloud.cipher,
          onCapacity: meter.onCapacity,
          config: { heartbeatCoalesceSeconds },
        }),
      );
      const timed: typeof handler = async (event) => {
        const started = performance.now();
        try {
          return await handler(event);
        } finally {
          handlerMs += performance.now() - started;
        }
      };
      const versionsBefore = await eventLogLength();
      counter.reset();
      meter.reset();
      handlerMs = 0;
      for (const [hostId, secret] of secrets) {
        const snapshot = signSnapshot(secret, { hostId, seq, signedAt: new Date().toISOString(), state });
        await hostS3.send(
          new PutObjectCommand({
            Bucket: bucket,
            Key: snapshotKey(hostId, seq),
            Body: JSON.stringify(snapshot),
          }),
        );
      }
      await waitForNotifications(HOSTS);
      const poller = startSqsLambdaPoller({
        sqs: pollerSqs,
        queueUrl: cloud.endpoints.ingestQueueUrl,
        queueArn: 'arn:aws:sqs:us-east-1:000000000000:fleetfold-ingest',
        region,
        handler: timed,
        batchSize: BATCH,
        waitTimeSeconds: 0,
      });
      while (poller.stats.succeeded + poller.stats.failed < HOSTS) await sleep(5);
      await poller.stop();
      const capacity = meter.totals();
      const appended = (await eventLogLength()) - versionsBefore;
      const invocations = poller.stats.invocations;
      const perSnapshot: PerSnapshot = {
        s3Put: counter.get('S3:PutObject') / HOSTS,
        s3Get: counter.get('S3:GetObject') / HOSTS,
        s3Other: (counter.get('S3:CopyObject') + counter.get('S3:DeleteObject')) / HOSTS,
        // Only receives that returned messages: the event source mapping's idle polling is a fixed cost.
        sqs: (counter.get('SQS:SendMessage') + invocations + counter.get('SQS:DeleteMessageBatch')) / HOSTS,
        lambdaInvocations: invocations / HOSTS,
        lambdaMsPerInvocation: handlerMs / Math.max(1, invocations),
        wru: capacity.writeUnits / HOSTS,
        rru: capacity.readUnits / HOSTS,
        eventLogWrites: appended / HOSTS,
      };
      return perSnapshot;
    };

    const log = new DynamoEventStore({ client: cloud.clients.dynamodb, tableName: eventsTable });
    async function eventLogLength(): Promise<number> {
      let total = 0;
      for (const hostId of secrets.keys()) total += await log.currentVersion(hostStream(hostId));
      return total;
    }

    async function waitForNotifications(expected: number) {
      while (counter.get('SQS:SendMessage') < expected) await sleep(5);
    }

    await runPhase(1, machineState(), 60); // first contact: not what a steady fleet pays
    const changed = await runPhase(
      2,
      machineState({ config: { version: 'c2', values: { 'sip.port': '5070' } } }),
      60,
    );
    const unchangedCoalesced = await runPhase(
      3,
      machineState({ config: { version: 'c2', values: { 'sip.port': '5070' } } }),
      60,
    );
    const unchangedStale = await runPhase(
      4,
      machineState({ config: { version: 'c2', values: { 'sip.port': '5070' } } }),
      0,
    );

    const phases = {
      changed,
      'unchanged-coalesced': unchangedCoalesced,
      'unchanged-heartbeat': unchangedStale,
    };
    for (const [kind, figures] of Object.entries(phases)) {
      emit({
        name: `requests.per-snapshot.${kind}.event-log-appends`,
        value: round(figures.eventLogWrites, 2),
        unit: 'events/snapshot',
      });
      emit({
        name: `requests.per-snapshot.${kind}.dynamodb-wru`,
        value: round(figures.wru, 2),
        unit: 'WRU/snapshot',
        note: 'table writes as DynamoDB reports them; KEYS_ONLY index writes only happen when group, role or status change',
      });
      emit({
        name: `requests.per-snapshot.${kind}.dynamodb-rru`,
        value: round(figures.rru, 2),
        unit: 'RRU/snapshot',
      });
      emit({
        name: `requests.per-snapshot.${kind}.s3`,
        value: round(figures.s3Put + figures.s3Get + figures.s3Other, 2),
        unit: 'requests/snapshot',
        put: figures.s3Put,
        get: figures.s3Get,
      });
      emit({
        name: `requests.per-snapshot.${kind}.sqs`,
        value: round(figures.sqs, 2),
        unit: 'requests/snapshot',
      });
      emit({
        name: `requests.per-snapshot.${kind}.lambda`,
        value: round(figures.lambdaInvocations, 2),
        unit: 'invocations/snapshot',
        msPerInvocation: round(figures.lambdaMsPerInvocation, 1),
      });
    }

    // The cost model: 1,000 hosts, 3 state changes an hour each, plus the agent's default hourly heartbeat.
    const hosts = 1000;
    const changesPerMonth = hosts * 3 * HOURS_PER_MONTH;
    const heartbeatsPerMonth = hosts * 1 * HOURS_PER_MONTH;
    const costOf = (f: PerSnapshot, count: number) => ({
      s3: (count * ((f.s3Put + f.s3Other) * PRICE.s3PutPer1000 + f.s3Get * PRICE.s3GetPer1000)) / 1000,
      sqs: (count * f.sqs * PRICE.sqsPerMillionRequests) / 1e6,
      lambda:
        (count * f.lambdaInvocations * PRICE.lambdaPerMillionInvocations) / 1e6 +
        count * f.lambdaInvocations * (f.lambdaMsPerInvocation / 1000) * LAMBDA_GB * PRICE.lambdaPerGbSecond,
      dynamodb: (count * (f.wru * PRICE.dynamoPerMillionWru + f.rru * PRICE.dynamoPerMillionRru)) / 1e6,
    });
    const parts = [costOf(changed, changesPerMonth), costOf(unchangedStale, heartbeatsPerMonth)];
    const byService = Object.fromEntries(
      (['s3', 'sqs', 'lambda', 'dynamodb'] as const).map((k) => [
        k,
        round(
          parts.reduce((sum, p) => sum + p[k], 0),
          2,
        ),
      ]),
    );
    // KMS: secrets are decrypted once per host per warm function; at most a few thousand requests a month.
    const kms = round((hosts * 30 * PRICE.kmsPer10000Requests) / 10_000 + 1, 2);
    const total = Object.values(byService).reduce((a, b) => a + b, 0) + kms;
    emit({
      name: 'cost.monthly.1000-hosts.snapshot-pipeline',
      value: round(total, 2),
      unit: 'USD/month',
      model: '1,000 hosts × 3 changes/h + 1 heartbeat/h, 730 h, us-east-1 list prices, no free tier',
      note: 'the snapshot pipeline only, from the requests measured here; the whole bill is `npm run bench cost`',
      byService: { ...byService, kms },
      prices: PRICE,
    });
    for (const client of [hostS3, ingestS3, pollerSqs]) client.destroy();
  } finally {
    await cloud.stop();
    await rm(stateDir, { recursive: true, force: true });
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
