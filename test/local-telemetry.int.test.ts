import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalCloud } from '../infra/local/cloud.ts';
import { snapshotKey } from '../shared/keys.ts';
import { newHostSecret, signSnapshot } from '../shared/signing.ts';
import { METRICS } from '../shared/telemetry.ts';
import { eventually, registerHost, testCloud } from './support/cloud.ts';
import { machineState } from './support/fixtures.ts';

/*
 * Local mode binds the telemetry port to a MetricCounter: the same handlers that count into Powertools
 * Metrics on Lambda count here, through the real S3 notification, queue poller, ingest and event store.
 */
let cloud: LocalCloud;
let secret: string;

beforeAll(async () => {
  cloud = await testCloud();
  secret = await registerHost(cloud, 'tm-1');
});

afterAll(async () => {
  await cloud?.stop();
});

async function post(seq: number, signWith: string): Promise<void> {
  const snapshot = signSnapshot(signWith, {
    hostId: 'tm-1',
    seq,
    signedAt: new Date().toISOString(),
    state: machineState(),
  });
  // Through the bridge, which announces the upload on the ingest queue as S3 would.
  await cloud.clients.s3.send(
    new PutObjectCommand({
      Bucket: cloud.endpoints.bucket,
      Key: snapshotKey('tm-1', seq),
      Body: JSON.stringify(snapshot),
    }),
  );
}

describe('local telemetry', () => {
  it('counts the registration and an ingested snapshot as appended events, and a forged one as refused', async () => {
    const { telemetry } = cloud;
    expect(telemetry.total(METRICS.eventsAppended)).toBe(1); // HostRegistered
    await post(1, secret);
    await eventually(async () => (telemetry.total(METRICS.snapshotsIngested) === 1 ? true : undefined));
    expect(telemetry.total(METRICS.eventsAppended)).toBe(2); // + StateObserved
    await post(2, newHostSecret());
    await eventually(async () => (telemetry.total(METRICS.snapshotsRefused) === 1 ? true : undefined));
    expect(telemetry.total(METRICS.snapshotsRefused, { reason: 'bad-signature' })).toBe(1);
    expect(telemetry.total(METRICS.snapshotsIngested)).toBe(1);
  });
});
