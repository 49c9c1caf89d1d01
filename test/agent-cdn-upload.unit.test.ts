import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CdnUploadError, grantFromFile } from '../agent/cdn-upload.ts';
import { ConfigError, loadConfig } from '../agent/config.ts';
import { SnapshotUploader } from '../agent/uploader.ts';
import { issueUploadGrant, localKeyPairId, type UploadGrant, verifySignedUrl } from '../shared/cdn-policy.ts';
import { Snapshot } from '../shared/schemas.ts';
import { verifySnapshotSignature } from '../shared/signing.ts';
import { machineState } from './support/fixtures.ts';

/*
 * The agent's side of the CDN path against a real HTTP server that records what arrives and answers as told:
 * the URL shape CloudFront expects, the grant re-read from its file before each PUT (rotation), and failures.
 */

const SECRET = 'test-secret-test-secret-test-secret';
const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const key = { keyPairId: localKeyPairId(privateKey), privateKey };
// Never called: with a CDN configured the uploader must not touch S3 (an unreachable endpoint proves it).
const s3 = new S3Client({
  region: 'us-east-1',
  endpoint: 'http://127.0.0.1:9',
  credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
  maxAttempts: 1,
});

interface Received {
  method: string;
  url: string;
  body: string;
}

let server: Server;
let url: string;
let dir: string;
const received: Received[] = [];
let answer = 200;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetfold-agent-cdn-'));
  server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      received.push({
        method: request.method ?? '',
        url: `http://${request.headers.host}${request.url}`,
        body: Buffer.concat(chunks).toString('utf8'),
      });
      response.writeHead(answer).end(answer === 200 ? '' : '<Error><Code>AccessDenied</Code></Error>');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server?.close();
  s3.destroy();
  await rm(dir, { recursive: true, force: true });
});

function grant(hostId: string, now = new Date(), lifetimeSeconds = 3_600): UploadGrant {
  return issueUploadGrant({ url, hostId, now, lifetimeSeconds, key });
}

function uploader(grantFile: string, onFailure?: (error: unknown) => void) {
  let seq = 0;
  return new SnapshotUploader({
    s3,
    bucket: 'unused',
    hostId: 'h1',
    secret: SECRET,
    sequence: { next: async () => ++seq },
    cdn: { url, grant: grantFromFile(grantFile) },
    baseDelayMs: 1,
    maxDelayMs: 5,
    ...(onFailure ? { onFailure } : {}),
  });
}

describe('the agent uploading through the CDN', () => {
  it('PUTs the signed snapshot to <url>/snapshots/<hostId>/<seq>.json with Policy, Signature and Key-Pair-Id', async () => {
    const file = join(dir, 'h1.json');
    await writeFile(file, JSON.stringify(grant('h1')));
    received.length = 0;
    const up = uploader(file);
    up.submit({ state: machineState(), reason: 'changed' });
    await up.idle();
    expect(received).toHaveLength(1);
    const [put] = received as [Received];
    expect(put.method).toBe('PUT');
    const target = new URL(put.url);
    expect(target.pathname).toBe('/snapshots/h1/1.json');
    expect([...target.searchParams.keys()]).toEqual(['Policy', 'Signature', 'Key-Pair-Id']);
    expect(verifySignedUrl({ url: put.url }, new Map([[key.keyPairId, publicKey]]), new Date()).ok).toBe(
      true,
    );
    const snapshot = Snapshot.parse(JSON.parse(put.body));
    expect(verifySnapshotSignature(SECRET, snapshot)).toBe(true);
  });

  it('reads the grant file before every PUT, so replacing it rotates the grant without a restart', async () => {
    const file = join(dir, 'rotating.json');
    const first = grant('h1');
    await writeFile(file, JSON.stringify(first));
    received.length = 0;
    const up = uploader(file);
    up.submit({ state: machineState(), reason: 'changed' });
    await up.idle();
    const second = grant('h1', new Date(Date.now() + 60_000));
    await writeFile(file, JSON.stringify(second));
    up.submit({ state: machineState({ status: 'draining' }), reason: 'changed' });
    await up.idle();
    const policies = received.map((put) => new URL(put.url).searchParams.get('Policy'));
    expect(policies).toEqual([first.policy, second.policy]);
  });

  it('fails an attempt with an expired grant before sending anything, and retries once a fresh one is in place', async () => {
    const file = join(dir, 'expired.json');
    await writeFile(file, JSON.stringify(grant('h1', new Date(Date.now() - 7_200_000))));
    received.length = 0;
    const failures: unknown[] = [];
    const up = uploader(file, (error) => {
      failures.push(error);
      // The operator (or the local fleet) hands out a new grant while the agent retries.
      if (failures.length === 2) void writeFile(file, JSON.stringify(grant('h1')));
    });
    up.submit({ state: machineState(), reason: 'changed' });
    await up.idle();
    expect(failures[0]).toBeInstanceOf(CdnUploadError);
    expect(String(failures[0])).toMatch(/expired at/);
    expect(received.length).toBe(1);
  });

  it('treats a refusal by the edge as a failed attempt naming the status', async () => {
    const file = join(dir, 'refused.json');
    await writeFile(file, JSON.stringify(grant('h1')));
    answer = 403;
    const failures: unknown[] = [];
    const up = uploader(file, (error) => {
      failures.push(error);
      answer = 200;
    });
    up.submit({ state: machineState(), reason: 'changed' });
    await up.idle();
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({ name: 'CdnUploadError', status: 403 });
  });
});

describe('the agent configuration of the CDN path', () => {
  const base = {
    FLEETFOLD_MODE: 'local',
    FLEETFOLD_HOST_ID: 'h1',
    FLEETFOLD_SECRET: SECRET,
    FLEETFOLD_BUCKET: 'b',
    FLEETFOLD_GROUP: 'g',
    FLEETFOLD_HOST_TYPE: 't',
    FLEETFOLD_ROLES: 'r',
    FLEETFOLD_S3_ENDPOINT: 'http://127.0.0.1:1',
  };

  it('is off unless configured, and takes the URL and the grant file together', () => {
    expect(loadConfig(base).upload).toBeUndefined();
    expect(
      loadConfig({
        ...base,
        FLEETFOLD_UPLOAD_URL: 'https://d1.cloudfront.net/',
        FLEETFOLD_UPLOAD_GRANT_FILE: '/g',
      }).upload,
    ).toEqual({ url: 'https://d1.cloudfront.net', grantFile: '/g' });
  });

  it('rejects one without the other, and a URL that is not http(s)', () => {
    expect(() => loadConfig({ ...base, FLEETFOLD_UPLOAD_URL: 'https://d1.cloudfront.net' })).toThrow(
      /FLEETFOLD_UPLOAD_GRANT_FILE is not set/,
    );
    expect(() => loadConfig({ ...base, FLEETFOLD_UPLOAD_GRANT_FILE: '/g' })).toThrow(
      /FLEETFOLD_UPLOAD_URL is not set/,
    );
    expect(() =>
      loadConfig({ ...base, FLEETFOLD_UPLOAD_URL: 'ftp://d1', FLEETFOLD_UPLOAD_GRANT_FILE: '/g' }),
    ).toThrow(ConfigError);
  });
});
