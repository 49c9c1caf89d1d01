import { execFile } from 'node:child_process';
import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { GetObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { SignatureV4 } from '@smithy/signature-v4';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalCloud } from '../infra/local/cloud.ts';
import { quarantineKeys, snapshotKey } from '../shared/keys.ts';
import type { MachineStateInput } from '../shared/schemas.ts';
import { apiEvent, eventually, registerHost, testCloud } from './support/cloud.ts';

/*
 * A host with no Node: docs/examples/post-snapshot.sh canonicalises with `jq -S -c`, signs with
 * `openssl dgst -sha256 -hmac` and PUTs with `curl --aws-sigv4` to the embedded cloud's S3 endpoint; the real
 * ingest (S3 notification → SQS → ingest handler) must then accept it into the host's history.
 */

const SCRIPT = join(import.meta.dirname, '..', 'docs', 'examples', 'post-snapshot.sh');
const run = promisify(execFile);

let cloud: LocalCloud;
let dir: string;
let secret: string;

beforeAll(async () => {
  cloud = await testCloud({ ingestConfig: { heartbeatCoalesceSeconds: 0 } });
  secret = await registerHost(cloud, 'sh-1', 'call-router', 'demo');
  dir = await mkdtemp(join(tmpdir(), 'fleetfold-host-protocol-'));
});

afterAll(async () => {
  await cloud?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The least a host must say: every member with a default is left out, so the script must fill them in. */
const minimalState: MachineStateInput = {
  status: 'running',
  group: 'demo',
  hostType: 'call-router',
  roles: ['call-router'],
  ips: { internal: '10.0.0.9' },
  capacity: { sessions: 100 },
  config: { version: 'c1' },
  software: { 'call-router': { version: '1.4.0' } },
  operational: { load: 0.25, sessions: { voice: 2 } },
};

async function postWithScript(state: unknown, env: Record<string, string> = {}) {
  const file = join(dir, `state-${Math.random().toString(36).slice(2)}.json`);
  await writeFile(file, JSON.stringify(state));
  const { stdout } = await run('bash', [SCRIPT, file], {
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      FLEETFOLD_HOST_ID: 'sh-1',
      FLEETFOLD_SECRET: secret,
      FLEETFOLD_BUCKET: cloud.endpoints.bucket,
      FLEETFOLD_S3_ENDPOINT: cloud.endpoints.s3,
      AWS_REGION: cloud.endpoints.region,
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
      ...env,
    },
  });
  return stdout.trim();
}

async function host(): Promise<
  { lastSeq: number; state?: Record<string, unknown> } & Record<string, unknown>
> {
  const response = await cloud.apiHandler(apiEvent('GET', '/hosts/sh-1'));
  expect(response.statusCode).toBe(200);
  return JSON.parse(response.body);
}

async function exists(key: string): Promise<boolean> {
  try {
    await cloud.clients.s3Direct.send(new HeadObjectCommand({ Bucket: cloud.endpoints.bucket, Key: key }));
    return true;
  } catch {
    return false;
  }
}

describe('a snapshot posted with bash, jq, openssl and curl', () => {
  it('is ingested: the host record moves to its sequence and the history holds it', async () => {
    const before = (await host()).lastSeq ?? 0;
    const key = await postWithScript(minimalState);
    const seq = Number(/^snapshots\/sh-1\/(\d+)\.json$/.exec(key)?.[1]);
    expect(seq).toBeGreaterThan(before);

    const record = await eventually(async () => {
      const current = await host();
      return current.lastSeq === seq ? current : undefined;
    });
    expect(record).toMatchObject({
      status: 'running',
      state: { software: { 'call-router': { version: '1.4.0', status: 'running' } } },
    });
    const history = await cloud.apiHandler(apiEvent('GET', '/hosts/sh-1/history'));
    const { events } = JSON.parse(history.body) as {
      events: { type: string; eventId: string; data: { seq?: number } }[];
    };
    expect(events.find((event) => event.type === 'StateObserved')).toMatchObject({
      eventId: key,
      data: { seq },
    });
    expect(await exists(quarantineKeys(key).object)).toBe(false);
  });

  it('is refused as bad-signature when signed with another secret, and the host stays where it was', async () => {
    const { lastSeq } = await host();
    const key = await postWithScript(
      { ...minimalState, status: 'draining' },
      { FLEETFOLD_SECRET: 'not-the-secret-of-sh-1' },
    );
    const { reason } = quarantineKeys(key);
    await eventually(async () => ((await exists(reason)) ? true : undefined));
    const stored = await cloud.clients.s3Direct.send(
      new GetObjectCommand({ Bucket: cloud.endpoints.bucket, Key: reason }),
    );
    expect(JSON.parse((await stored.Body?.transformToString()) ?? '{}')).toMatchObject({
      reason: 'bad-signature',
    });
    expect((await host()).lastSeq).toBe(lastSeq);
  });

  it('keeps its sequence moving forward through FLEETFOLD_SEQ_FILE even when the clock is behind', async () => {
    const seqFile = join(dir, 'seq');
    const { lastSeq } = await host();
    await writeFile(seqFile, `${lastSeq + 1_000_000_000_000}\n`);
    const key = await postWithScript(
      { ...minimalState, status: 'draining' },
      { FLEETFOLD_SEQ_FILE: seqFile },
    );
    expect(key).toBe(snapshotKey('sh-1', lastSeq + 1_000_000_000_001));
    await eventually(async () => ((await host()).lastSeq === lastSeq + 1_000_000_000_001 ? true : undefined));
    expect((await host()).status).toBe('draining');
  });

  it('refuses, before signing or sending anything, a state jq would not canonicalise as RFC 8785 does', async () => {
    const { lastSeq } = await host();
    for (const state of [
      { ...minimalState, operational: { load: 0.00001 } },
      { ...minimalState, config: { values: { 'emoji-\u{1f600}': 'x' } } },
      { ...minimalState, config: { values: { key: 'del\u007f' } } },
    ]) {
      await expect(postWithScript(state)).rejects.toMatchObject({
        stderr: expect.stringContaining('not canonicalisable with jq'),
      });
    }
    expect((await host()).lastSeq).toBe(lastSeq);
  });

  it('signs its PUT as the AWS SDK would (SigV4 for S3, payload hash in x-amz-content-sha256)', async () => {
    // The emulator does not check SigV4, real S3 does: the request curl makes is recomputed with the SDK's signer.
    const seen: { method?: string; url?: string; headers?: IncomingHttpHeaders; body?: string } = {};
    const recorder = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        Object.assign(seen, {
          method: request.method,
          url: request.url,
          headers: request.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        });
        response.end();
      });
    });
    await new Promise<void>((resolve) => recorder.listen(0, '127.0.0.1', resolve));
    const { port } = recorder.address() as AddressInfo;
    const credentials = {
      accessKeyId: 'AKIDEXAMPLE',
      secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
    };
    try {
      await postWithScript(minimalState, {
        FLEETFOLD_S3_ENDPOINT: `http://127.0.0.1:${port}`,
        AWS_ACCESS_KEY_ID: credentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
        AWS_SESSION_TOKEN: 'session-token',
      });
    } finally {
      recorder.close();
    }
    const headers = seen.headers as IncomingHttpHeaders;
    const body = seen.body as string;
    expect(headers['x-amz-content-sha256']).toBe(createHash('sha256').update(body).digest('hex'));
    const signed = /SignedHeaders=([^,]+)/.exec(String(headers.authorization))?.[1]?.split(';') ?? [];
    expect(signed).toEqual(
      expect.arrayContaining(['host', 'x-amz-content-sha256', 'x-amz-date', 'x-amz-security-token']),
    );
    const signer = new SignatureV4({
      service: 's3',
      region: cloud.endpoints.region,
      credentials: { ...credentials, sessionToken: 'session-token' },
      sha256: NodeSha256,
      uriEscapePath: false,
    });
    const amzDate = String(headers['x-amz-date']);
    const [path, query] = String(seen.url).split('?');
    const expected = await signer.sign(
      {
        method: String(seen.method),
        protocol: 'http:',
        hostname: '127.0.0.1',
        port,
        path: path as string,
        query: Object.fromEntries(new URLSearchParams(query ?? '')),
        headers: Object.fromEntries(signed.map((name) => [name, String(headers[name])])),
        body,
      },
      {
        signingDate: new Date(
          amzDate.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z'),
        ),
      },
    );
    expect(headers.authorization).toBe(expected.headers.authorization);
  });
});

/** SHA-256 and HMAC-SHA256 from node:crypto, in the shape the SDK's signer takes. */
class NodeSha256 {
  readonly #secret: Buffer | undefined;
  #hash: Hash | Hmac;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.#secret =
      secret === undefined
        ? undefined
        : typeof secret === 'string'
          ? Buffer.from(secret)
          : ArrayBuffer.isView(secret)
            ? Buffer.from(secret.buffer, secret.byteOffset, secret.byteLength)
            : Buffer.from(secret);
    this.#hash = this.#fresh();
  }
  #fresh(): Hash | Hmac {
    return this.#secret === undefined ? createHash('sha256') : createHmac('sha256', this.#secret);
  }
  update(data: Uint8Array): void {
    this.#hash.update(data);
  }
  async digest(): Promise<Uint8Array> {
    return this.#hash.digest();
  }
  reset(): void {
    this.#hash = this.#fresh();
  }
}
