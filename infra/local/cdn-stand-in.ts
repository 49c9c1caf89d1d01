import { createPrivateKey, createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  localKeyPairId,
  type PolicyRefusal,
  type PolicySigningKey,
  type UploadGrantIssuer,
  verifySignedUrl,
} from '../../shared/cdn-policy.ts';
import { SNAPSHOT_PREFIX } from '../../shared/keys.ts';
import { listenOnLoopback } from './listen.ts';
import { readOrCreateSecret } from './state-dir.ts';

/*
 * Local mode's CloudFront distribution for snapshot uploads (infra/constructs/upload-distribution.ts): every
 * request must carry a signed policy that verifies with a key of the trusted key group and whose Resource
 * covers the URL (shared/cdn-policy.ts checks it as CloudFront does); anything else is a 403 before the
 * bucket is touched. A request that passes is written into the bucket the way Origin Access Control does,
 * with the stand-in's own credentials and only as a PutObject under snapshots/.
 */

export interface CdnStandInOptions {
  /** Writes into the bucket (through the notification bridge, so the ingest hears of it). */
  s3: S3Client;
  bucket: string;
  /** The trusted key group: Key-Pair-Id → RSA public key. */
  trustedKeys: ReadonlyMap<string, KeyObject>;
  /** 0 (default) picks a free port; it listens on 127.0.0.1 only. */
  port?: number;
  now?: () => Date;
  /** Larger bodies are refused with 413 (the ingest would quarantine them anyway). */
  maxBodyBytes?: number;
  /** Told about every refusal: tests and the demo's log see why. */
  onRefused?: (refusal: StandInRefusal) => void;
  onError?: (error: unknown, key: string) => void;
}

export interface StandInRefusal {
  status: 403 | 413;
  reason: PolicyRefusal | 'method-not-allowed' | 'outside-origin-grant' | 'too-large';
  method: string;
  path: string;
}

export interface CdnStandIn {
  /** The distribution's stand-in domain: `http://127.0.0.1:<port>`. */
  url: string;
  /** Objects written so far. */
  readonly forwarded: number;
  stop(): Promise<void>;
}

const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

export async function startCdnStandIn(options: CdnStandInOptions): Promise<CdnStandIn> {
  const now = options.now ?? (() => new Date());
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  let forwarded = 0;

  const refuse = (response: ServerResponse, refusal: StandInRefusal, message: string) => {
    options.onRefused?.(refusal);
    respond(response, refusal.status, refusal.status === 413 ? 'EntityTooLarge' : 'AccessDenied', message);
  };

  const handle = async (request: IncomingMessage, response: ServerResponse) => {
    const method = request.method ?? 'GET';
    const url = `http://${request.headers.host ?? '127.0.0.1'}${request.url ?? '/'}`;
    const path = new URL(url).pathname;
    const verdict = verifySignedUrl(
      { url, ...(request.socket.remoteAddress ? { sourceIp: request.socket.remoteAddress } : {}) },
      options.trustedKeys,
      now(),
    );
    if (!verdict.ok) {
      request.resume();
      return refuse(response, { status: 403, reason: verdict.reason, method, path }, verdict.detail);
    }
    // What the OAC grant allows: s3:PutObject on snapshots/*; S3 refuses everything else.
    let key: string;
    try {
      key = decodeURIComponent(path.slice(1));
    } catch {
      request.resume();
      return respond(response, 400, 'InvalidURI', 'Could not parse the specified URI');
    }
    if (method !== 'PUT') {
      request.resume();
      return refuse(response, { status: 403, reason: 'method-not-allowed', method, path }, 'Access Denied');
    }
    if (!key.startsWith(SNAPSHOT_PREFIX)) {
      request.resume();
      return refuse(response, { status: 403, reason: 'outside-origin-grant', method, path }, 'Access Denied');
    }
    const body = await readBody(request, maxBodyBytes);
    if (!body) {
      return refuse(
        response,
        { status: 413, reason: 'too-large', method, path },
        'Your proposed upload is too large',
      );
    }
    try {
      const result = await options.s3.send(
        new PutObjectCommand({
          Bucket: options.bucket,
          Key: key,
          Body: body,
          ContentType: request.headers['content-type'] ?? 'application/octet-stream',
        }),
      );
      forwarded += 1;
      response.writeHead(200, { ...(result.ETag ? { etag: result.ETag } : {}), 'content-length': '0' });
      response.end();
    } catch (error) {
      options.onError?.(error, key);
      respond(response, 502, 'OriginError', 'the bucket did not take the object');
    }
  };

  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      options.onError?.(error, request.url ?? '');
      if (!response.headersSent) respond(response, 500, 'InternalError', 'the stand-in failed');
      else response.destroy();
    });
  });
  const port = await listenOnLoopback(server, options.port);
  return {
    url: `http://127.0.0.1:${port}`,
    get forwarded() {
      return forwarded;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** The body, or undefined once it passes `limit` (the rest is drained, so the 413 still reaches the client). */
async function readBody(request: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  const declared = Number(request.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    request.resume();
    return undefined;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      request.resume();
      return undefined;
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** CloudFront's and S3's error bodies are XML with a code and a message. */
function respond(response: ServerResponse, status: number, code: string, message: string): void {
  const body = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${escapeXml(message)}</Message></Error>`;
  response.writeHead(status, { 'content-type': 'text/xml', 'content-length': Buffer.byteLength(body) });
  response.end(body);
}

function escapeXml(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}

/**
 * The local upload signing key (`<state>/upload-signing.pem`, RSA 2048, made at first start): what the
 * operator's key in SSM and the public key in the trusted key group are on AWS.
 */
export async function localUploadSigningKey(
  path: string,
): Promise<PolicySigningKey & { publicKey: KeyObject }> {
  // Made off the event loop (RSA generation takes up to 0.2 s), and only when the file is not there yet.
  const existing = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  const generated = existing === undefined ? await newRsaKeyPem() : '';
  // readOrCreateSecret creates atomically: two processes starting together agree on one key.
  const pem = await readOrCreateSecret(path, () => generated);
  const privateKey = createPrivateKey(pem);
  return { keyPairId: localKeyPairId(privateKey), privateKey, publicKey: createPublicKey(privateKey) };
}

function newRsaKeyPem(): Promise<string> {
  return new Promise((resolve, reject) =>
    generateKeyPair(
      'rsa',
      {
        modulusLength: 2048,
        privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
        publicKeyEncoding: { type: 'spki', format: 'pem' },
      },
      (error, _publicKey, privateKey) => (error ? reject(error) : resolve(privateKey.trim())),
    ),
  );
}

/**
 * What a local agent needs to post through the stand-in: a fresh grant, written beside the host's secret file
 * (`<directory>/<hostId>.upload-grant.json`, 0600) at every launch, so a relaunched host always holds a valid one.
 */
export async function cdnUploadEnv(
  cdn: { url: string; grants: UploadGrantIssuer },
  hostId: string,
  directory: string,
  now = new Date(),
): Promise<Record<string, string>> {
  const grant = await cdn.grants.issue(hostId, now);
  const file = join(directory, `${hostId}.upload-grant.json`);
  await mkdir(directory, { recursive: true, mode: 0o700 });
  // Written whole then renamed: an agent reading it before each PUT never sees half a grant.
  await writeFile(`${file}.tmp`, `${JSON.stringify(grant, null, 2)}\n`, { mode: 0o600 });
  await rename(`${file}.tmp`, file);
  return { FLEETFOLD_UPLOAD_URL: cdn.url, FLEETFOLD_UPLOAD_GRANT_FILE: file };
}
