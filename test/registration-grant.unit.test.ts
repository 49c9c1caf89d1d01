import { generateKeyPairSync } from 'node:crypto';
import type { APIGatewayProxyEvent } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { type ApiDeps, createApiHandler } from '../functions/api/handler.ts';
import { generatedDocuments } from '../functions/api/openapi.ts';
import {
  localKeyPairId,
  type UploadGrantIssuer,
  uploadGrantIssuer,
  verifySignedUrl,
} from '../shared/cdn-policy.ts';
import {
  FakeCipher,
  MemoryDocumentStore,
  MemoryEventStore,
  MemoryHostStore,
  RecordingReconcileStarter,
} from './support/memory-stores.ts';

/* POST /hosts and the CDN grant: handed out with the secret when configured, and never a host without one. */

const NOW = new Date('2030-05-06T07:08:09.000Z');
const DOMAIN = 'https://d111111abcdef8.cloudfront.net';
const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const key = { keyPairId: localKeyPairId(privateKey), privateKey };

function api(uploadGrants?: UploadGrantIssuer) {
  const deps: ApiDeps = {
    hosts: new MemoryHostStore(),
    events: new MemoryEventStore(),
    cipher: new FakeCipher(),
    documents: new MemoryDocumentStore(),
    reconcile: new RecordingReconcileStarter(),
    now: () => NOW,
    newSecret: () => 'secret-1',
    newId: () => 'id1',
    published: generatedDocuments(),
    ...(uploadGrants ? { uploadGrants } : {}),
  };
  return createApiHandler(deps);
}

function event(method: string, path: string, body?: unknown): APIGatewayProxyEvent {
  return {
    httpMethod: method,
    path,
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    queryStringParameters: null,
    body: body === undefined ? null : JSON.stringify(body),
    isBase64Encoded: false,
  } as unknown as APIGatewayProxyEvent;
}

const host = { hostId: 'edge-1', group: 'edge', hostType: 'router', roles: ['router'] };

describe('POST /hosts with the CDN path configured', () => {
  it("returns the host's grant: a policy for its own prefix, valid for the configured lifetime", async () => {
    const handle = api(
      uploadGrantIssuer({ url: DOMAIN, lifetimeSeconds: 7 * 86_400, loadKey: async () => key }),
    );
    const response = await handle(event('POST', '/hosts', host));
    expect(response.statusCode).toBe(201);
    const { upload } = JSON.parse(response.body);
    expect(upload).toMatchObject({
      hostId: 'edge-1',
      url: DOMAIN,
      resource: `${DOMAIN}/snapshots/edge-1/*`,
      expiresAt: new Date(NOW.getTime() + 7 * 86_400_000).toISOString(),
      keyPairId: key.keyPairId,
    });
    const url = `${DOMAIN}/snapshots/edge-1/1.json?Policy=${upload.policy}&Signature=${upload.signature}&Key-Pair-Id=${upload.keyPairId}`;
    expect(verifySignedUrl({ url }, new Map([[key.keyPairId, publicKey]]), NOW).ok).toBe(true);
  });

  it('fails without registering the host when the signing key cannot be read', async () => {
    const handle = api(
      uploadGrantIssuer({
        url: DOMAIN,
        loadKey: async () => {
          throw new Error('AccessDeniedException: not authorized to perform ssm:GetParameter');
        },
      }),
    );
    expect((await handle(event('POST', '/hosts', host))).statusCode).toBe(500);
    expect((await handle(event('GET', '/hosts/edge-1'))).statusCode).toBe(404);
  });

  it('returns no grant when the CDN path is not configured', async () => {
    const response = await api()(event('POST', '/hosts', host));
    expect(response.statusCode).toBe(201);
    expect(JSON.parse(response.body)).not.toHaveProperty('upload');
  });
});

describe('POST /hosts/{id}/upload-grant: rotation', () => {
  it('issues a fresh grant for the same prefix, valid from now', async () => {
    let now = NOW;
    const issuer = uploadGrantIssuer({ url: DOMAIN, lifetimeSeconds: 86_400, loadKey: async () => key });
    const handle = createApiHandler({
      hosts: new MemoryHostStore(),
      events: new MemoryEventStore(),
      cipher: new FakeCipher(),
      documents: new MemoryDocumentStore(),
      reconcile: new RecordingReconcileStarter(),
      now: () => now,
      newSecret: () => 'secret-1',
      newId: () => 'id1',
      published: generatedDocuments(),
      uploadGrants: issuer,
    });
    const first = JSON.parse((await handle(event('POST', '/hosts', host))).body).upload;
    now = new Date(NOW.getTime() + 20 * 3_600_000);
    const response = await handle(event('POST', '/hosts/edge-1/upload-grant'));
    expect(response.statusCode).toBe(200);
    const renewed = JSON.parse(response.body);
    expect(renewed.resource).toBe(first.resource);
    expect(renewed.expiresAt).toBe(new Date(now.getTime() + 86_400_000).toISOString());
    // Past the first grant's expiry the renewed one still admits the host's own prefix.
    const later = new Date(NOW.getTime() + 30 * 3_600_000);
    const url = (grant: typeof renewed) =>
      `${DOMAIN}/snapshots/edge-1/9.json?Policy=${grant.policy}&Signature=${grant.signature}&Key-Pair-Id=${grant.keyPairId}`;
    const trusted = new Map([[key.keyPairId, publicKey]]);
    expect(verifySignedUrl({ url: url(first) }, trusted, later).ok).toBe(false);
    expect(verifySignedUrl({ url: url(renewed) }, trusted, later).ok).toBe(true);
  });

  it('refuses an unknown host (404) and answers 409 naming the setting when grants are not configured', async () => {
    const configured = api(uploadGrantIssuer({ url: DOMAIN, loadKey: async () => key }));
    expect((await configured(event('POST', '/hosts/nobody/upload-grant'))).statusCode).toBe(404);
    const unconfigured = api();
    await unconfigured(event('POST', '/hosts', host));
    const response = await unconfigured(event('POST', '/hosts/edge-1/upload-grant'));
    expect(response.statusCode).toBe(409);
    expect(JSON.parse(response.body).detail).toContain('uploadSigningKeyParameter');
  });
});
