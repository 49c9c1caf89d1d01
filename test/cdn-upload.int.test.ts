import { readFile } from 'node:fs/promises';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalCloud } from '../infra/local/cloud.ts';
import { DynamoHostStore } from '../shared/adapters/dynamo-host-store.ts';
import { signedObjectUrl, type UploadGrant } from '../shared/cdn-policy.ts';
import { snapshotKey } from '../shared/keys.ts';
import { signSnapshot } from '../shared/signing.ts';
import { apiEvent, eventually, testCloud } from './support/cloud.ts';
import { machineState } from './support/fixtures.ts';

/*
 * The CDN upload path on the embedded cloud: hosts get a signed policy for their own prefix at registration
 * (and a fresh one at every launch of the local fleet), and the stand-in in front of the bucket admits exactly
 * what CloudFront would.
 */

let cloud: LocalCloud;
let hosts: DynamoHostStore;
const agentOutput: string[] = [];

beforeAll(async () => {
  cloud = await testCloud({
    agentUploads: 'cdn',
    ingestConfig: { heartbeatCoalesceSeconds: 0 },
    controlPlane: {
      agentHeartbeatSeconds: 60,
      agentPollSeconds: 1,
      onAgentOutput: (hostId, line) => agentOutput.push(`[${hostId}] ${line}`),
    },
  });
  hosts = new DynamoHostStore({ client: cloud.clients.dynamodb, tableName: cloud.endpoints.hostsTable });
});

afterAll(async () => {
  await cloud?.stop();
});

async function register(hostId: string): Promise<{ secret: string; upload?: UploadGrant }> {
  const response = await cloud.apiHandler(
    apiEvent('POST', '/hosts', { body: { hostId, group: 'cdn', hostType: 'media', roles: ['media'] } }),
  );
  expect(response.statusCode).toBe(201);
  return JSON.parse(response.body);
}

async function objectsUnder(prefix: string): Promise<string[]> {
  const listed = await cloud.clients.s3Direct.send(
    new ListObjectsV2Command({ Bucket: cloud.endpoints.bucket, Prefix: prefix }),
  );
  return (listed.Contents ?? []).map((object) => object.Key as string);
}

describe('uploads through the CDN stand-in', () => {
  it('hands each registered host a signed policy for its own prefix only', async () => {
    const { upload } = await register('cdn-registered');
    expect(upload).toMatchObject({
      hostId: 'cdn-registered',
      url: cloud.endpoints.cdn,
      resource: `${cloud.endpoints.cdn}/snapshots/cdn-registered/*`,
    });
    expect(Date.parse(upload?.expiresAt ?? '')).toBeGreaterThan(Date.now() + 29 * 86_400_000);
  });

  it("ingests the snapshots of an agent that posts through it, and refuses that host's policy elsewhere", async () => {
    const forwardedBefore = cloud.cdn.forwarded;
    await cloud.controlPlane.fleetPort.launch({
      hostId: 'cdn-1',
      group: 'cdn',
      hostType: 'media',
      roles: ['media'],
      instanceType: 'local',
      stateVersion: 1,
      secretRef: '',
    });
    const ingested = await eventually(async () => {
      const record = await hosts.get('cdn-1');
      return record && record.lastSeq >= 1 ? record : undefined;
    }, 30_000).catch((error: unknown) => {
      throw new Error(`${String(error)}\n${agentOutput.join('\n')}`);
    });
    expect(cloud.cdn.forwarded).toBeGreaterThan(forwardedBefore);
    expect(await objectsUnder('snapshots/cdn-1/')).toContain(snapshotKey('cdn-1', ingested.lastSeq));
    expect(await objectsUnder('rejected/snapshots/cdn-1/')).toEqual([]);

    // The grant the local fleet wrote for cdn-1, used for cdn-2's prefix with a body cdn-1 signed.
    const grantFile = agentGrantFile('cdn-1');
    const grant = JSON.parse(await readFile(grantFile, 'utf8')) as UploadGrant;
    const { secret } = await register('cdn-2');
    const forwarded = cloud.cdn.forwarded;
    const body = JSON.stringify(
      signSnapshot(secret, {
        hostId: 'cdn-2',
        seq: 1,
        signedAt: new Date().toISOString(),
        state: machineState(),
      }),
    );
    const foreign = await fetch(signedObjectUrl(grant.url, snapshotKey('cdn-2', 1), grant), {
      method: 'PUT',
      body,
    });
    expect(foreign.status).toBe(403);
    expect(await foreign.text()).toMatch(/AccessDenied.*outside the policy's resource/);
    expect(cloud.cdn.forwarded).toBe(forwarded);
    expect(await objectsUnder('snapshots/cdn-2/')).toEqual([]);
    expect(await objectsUnder('rejected/snapshots/cdn-2/')).toEqual([]);
  });

  it('refuses unsigned requests, and anything but a PUT under snapshots/ even when signed', async () => {
    const { upload } = await register('cdn-3');
    const grant = upload as UploadGrant;
    const unsigned = await fetch(`${cloud.endpoints.cdn}/${snapshotKey('cdn-3', 1)}`, {
      method: 'PUT',
      body: '{}',
    });
    expect(unsigned.status).toBe(403);
    const read = await fetch(signedObjectUrl(grant.url, snapshotKey('cdn-3', 1), grant));
    expect(read.status).toBe(403);
    const forwarded = cloud.cdn.forwarded;
    // Signed, yet a path outside snapshots/ the policy cannot cover: the resource check refuses it first.
    const outside = await fetch(signedObjectUrl(grant.url, 'rejected/snapshots/cdn-3/1.json', grant), {
      method: 'PUT',
      body: '{}',
    });
    expect(outside.status).toBe(403);
    expect(cloud.cdn.forwarded).toBe(forwarded);
    expect(await objectsUnder('snapshots/cdn-3/')).toEqual([]);
  });
});

function agentGrantFile(hostId: string): string {
  const instance = cloud.controlPlane.fleet.get(hostId);
  const file = instance?.spec.env?.FLEETFOLD_UPLOAD_GRANT_FILE;
  if (!file) throw new Error(`${hostId} was launched without an upload grant`);
  return file;
}
