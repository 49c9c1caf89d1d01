import { randomBytes } from 'node:crypto';
import {
  Agent,
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { S3Event, S3EventRecord } from 'aws-lambda';
import { listenOnLoopback } from './listen.ts';

/*
 * Neither fauxqs nor any other emulator here delivers S3 event notifications, and fauxqs has no hook for
 * object writes (its message spy is a bounded buffer to await in tests, not a subscription). So this is a
 * reverse proxy in front of fauxqs's S3 endpoint: it forwards every request untouched and, once a write
 * under the notification filter has succeeded, sends the AWS-format event to the queue, like the
 * bucket's notification configuration does in AWS. Hosts use the proxy's URL as their S3 endpoint.
 */

export type ObjectCreatedEventName =
  | 'ObjectCreated:Put'
  | 'ObjectCreated:Copy'
  | 'ObjectCreated:CompleteMultipartUpload';

export interface ObjectWrite {
  bucket: string;
  key: string;
  eventName: ObjectCreatedEventName;
}

export interface NotificationFilter {
  prefix: string;
  suffix: string;
}

export interface S3NotificationBridgeOptions {
  /** The S3 endpoint requests are forwarded to (fauxqs). */
  upstream: string;
  /** Talks to `upstream` directly, to read the stored object's size and ETag. */
  s3: S3Client;
  sqs: SQSClient;
  queueUrl: string;
  region: string;
  /** Only writes to this bucket notify, as a notification configuration belongs to one bucket. */
  bucket: string;
  /** Default: prefix `snapshots/`, suffix `.json`. */
  filter?: NotificationFilter;
  /** Names the notification configuration in each record (`s3.configurationId`). */
  configurationId?: string;
  /** 0 (default) picks a free port. The proxy listens on 127.0.0.1 only. */
  port?: number;
  /** Called when a write succeeded but its event could not be sent (the client then gets a 503 to retry). */
  onError?: (error: unknown, write: ObjectWrite) => void;
}

export interface S3NotificationBridge {
  /** The URL hosts should use as their S3 endpoint (path-style). */
  endpoint: string;
  port: number;
  /** Events sent so far. */
  readonly sent: number;
  stop(): Promise<void>;
}

export const SNAPSHOT_FILTER: NotificationFilter = { prefix: 'snapshots/', suffix: '.json' };

// Query parameters that turn a PUT/POST on a key into something other than creating the object.
const ALLOWED_WRITE_QUERY = new Set(['x-id']);

/**
 * Which object-creating S3 operation a request is, if any (path-style `/{bucket}/{key}`, or virtual-hosted
 * `{bucket}.host/{key}` for a known bucket). Tagging, ACLs, and parts of a multipart upload create nothing.
 */
export function classifyObjectWrite(
  method: string,
  rawUrl: string,
  headers: IncomingHttpHeaders,
  knownBucket: string,
): ObjectWrite | undefined {
  const url = new URL(rawUrl, 'http://bridge.invalid');
  const query = [...url.searchParams.keys()];
  const host = (headers.host ?? '').toLowerCase();
  let bucket: string;
  let encodedKey: string;
  if (host.startsWith(`${knownBucket.toLowerCase()}.`)) {
    bucket = knownBucket;
    encodedKey = url.pathname.slice(1);
  } else {
    const slash = url.pathname.indexOf('/', 1);
    if (slash < 0) return undefined;
    bucket = decodeURIComponent(url.pathname.slice(1, slash));
    encodedKey = url.pathname.slice(slash + 1);
  }
  if (encodedKey === '') return undefined;
  const key = decodeURIComponent(encodedKey);
  if (method === 'PUT' && query.every((name) => ALLOWED_WRITE_QUERY.has(name))) {
    const eventName = headers['x-amz-copy-source'] ? 'ObjectCreated:Copy' : 'ObjectCreated:Put';
    return { bucket, key, eventName };
  }
  if (
    method === 'POST' &&
    query.includes('uploadId') &&
    query.every((name) => name === 'uploadId' || ALLOWED_WRITE_QUERY.has(name))
  ) {
    return { bucket, key, eventName: 'ObjectCreated:CompleteMultipartUpload' };
  }
  return undefined;
}

export function matchesFilter(key: string, filter: NotificationFilter): boolean {
  return key.startsWith(filter.prefix) && key.endsWith(filter.suffix);
}

/**
 * Encodes a key as S3 does in event notifications: form-style (`+` for space, as Java's URLEncoder),
 * except that `/` stays as it is.
 */
export function encodeNotificationKey(key: string): string {
  return key
    .split('/')
    .map((segment) =>
      encodeURIComponent(segment)
        .replace(/[!'()~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
        .replaceAll('%20', '+'),
    )
    .join('/');
}

export interface StoredObjectFacts {
  size: number;
  /** Without the quotes HTTP puts around it, as in S3 events. */
  eTag: string;
  storedAt: Date;
  sequencer: string;
  requestId: string;
  sourceIp: string;
}

export function objectCreatedRecord(
  write: ObjectWrite,
  facts: StoredObjectFacts,
  region: string,
  configurationId: string,
): S3EventRecord {
  return {
    eventVersion: '2.1',
    eventSource: 'aws:s3',
    awsRegion: region,
    eventTime: facts.storedAt.toISOString(),
    eventName: write.eventName,
    userIdentity: { principalId: 'AWS:LOCAL' },
    requestParameters: { sourceIPAddress: facts.sourceIp },
    responseElements: { 'x-amz-request-id': facts.requestId, 'x-amz-id-2': 'fleetfold-local' },
    s3: {
      s3SchemaVersion: '1.0',
      configurationId,
      bucket: {
        name: write.bucket,
        ownerIdentity: { principalId: 'LOCAL' },
        arn: `arn:aws:s3:::${write.bucket}`,
      },
      object: {
        key: encodeNotificationKey(write.key),
        size: facts.size,
        eTag: facts.eTag,
        sequencer: facts.sequencer,
      },
    },
  };
}

/**
 * S3's sequencer orders events for the same key by comparing hex strings of equal length: the time in
 * microseconds plus a counter for writes within the same microsecond.
 */
function sequencerFactory(): () => string {
  let last = 0n;
  return () => {
    const now = BigInt(Date.now()) * 1000n;
    last = now > last ? now : last + 1n;
    return last.toString(16).toUpperCase().padStart(16, '0');
  };
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'upgrade', 'expect']);

function forwardableHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !HOP_BY_HOP.has(name)));
}

export async function startS3NotificationBridge(
  options: S3NotificationBridgeOptions,
): Promise<S3NotificationBridge> {
  const upstream = new URL(options.upstream);
  const filter = options.filter ?? SNAPSHOT_FILTER;
  const configurationId = options.configurationId ?? 'fleetfold-ingest';
  const nextSequencer = sequencerFactory();
  const agent = new Agent({ keepAlive: true });
  let sent = 0;

  const notify = async (
    write: ObjectWrite,
    known: { size: number; eTag: string } | undefined,
    storedAt: Date,
    sourceIp: string,
    requestId: string,
  ) => {
    // The stored object, not the request, is the truth; ask it only when the exchange did not tell us.
    const facts: { size: number; eTag: string } =
      known ??
      (await options.s3
        .send(new HeadObjectCommand({ Bucket: write.bucket, Key: write.key }))
        .then((head) => ({ size: head.ContentLength ?? 0, eTag: (head.ETag ?? '').replaceAll('"', '') })));
    const event: S3Event = {
      Records: [
        objectCreatedRecord(
          write,
          {
            ...facts,
            storedAt,
            sequencer: nextSequencer(),
            requestId,
            sourceIp,
          },
          options.region,
          configurationId,
        ),
      ],
    };
    await options.sqs.send(
      new SendMessageCommand({ QueueUrl: options.queueUrl, MessageBody: JSON.stringify(event) }),
    );
    sent++;
  };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const write = classifyObjectWrite(req.method ?? 'GET', req.url ?? '/', req.headers, options.bucket);
    const notified =
      write !== undefined && write.bucket === options.bucket && matchesFilter(write.key, filter)
        ? write
        : undefined;
    const upstreamReq = httpRequest(
      {
        protocol: upstream.protocol,
        hostname: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: forwardableHeaders(req.headers),
        agent,
      },
      (upstreamRes) => {
        const status = upstreamRes.statusCode ?? 502;
        const headers = forwardableHeaders(upstreamRes.headers);
        if (!notified || status !== 200) {
          res.writeHead(status, headers);
          upstreamRes.pipe(res);
          return;
        }
        const chunks: Buffer[] = [];
        upstreamRes.on('data', (chunk: Buffer) => chunks.push(chunk));
        upstreamRes.on('end', () => {
          const storedAt = new Date();
          const body = Buffer.concat(chunks);
          // CompleteMultipartUpload reports some failures as an <Error> document with status 200.
          if (notified.eventName === 'ObjectCreated:CompleteMultipartUpload' && body.includes('<Error>')) {
            res.writeHead(status, headers).end(body);
            return;
          }
          const requestId = String(upstreamRes.headers['x-amz-request-id'] ?? randomBytes(8).toString('hex'));
          // Answer only after the event is on the queue, so a successful PUT means the ingest will hear of it.
          const known = writtenFacts(notified, req.headers, upstreamRes.headers);
          notify(notified, known, storedAt, req.socket.remoteAddress ?? '127.0.0.1', requestId).then(
            () => res.writeHead(status, headers).end(body),
            (error: unknown) => {
              options.onError?.(error, notified);
              // The object is stored but nobody will hear of it: have the client retry the write.
              res
                .writeHead(503, { 'content-type': 'application/xml' })
                .end(
                  '<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable</Code>' +
                    '<Message>stored, but the event notification could not be sent; retry</Message></Error>',
                );
            },
          );
        });
        upstreamRes.on('error', () => res.destroy());
      },
    );
    upstreamReq.on('error', (error) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      res
        .writeHead(502, { 'content-type': 'application/xml' })
        .end(
          `<?xml version="1.0" encoding="UTF-8"?><Error><Code>BadGateway</Code><Message>${escapeXml(error.message)}</Message></Error>`,
        );
    });
    req.pipe(upstreamReq);
  };

  const server = createServer(handle);
  const port = await listenOnLoopback(server, options.port);
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    get sent() {
      return sent;
    },
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeIdleConnections();
        agent.destroy();
      }),
  };
}

/**
 * The size and ETag of what a plain PUT stored, from the request and response headers, which spares a HeadObject
 * per snapshot. A streamed (aws-chunked) body is longer than the object: its decoded length is what counts.
 * Copies, multipart completions and bodies of unknown length return undefined: then the object is asked.
 */
export function writtenFacts(
  write: ObjectWrite,
  request: IncomingHttpHeaders,
  response: IncomingHttpHeaders,
): { size: number; eTag: string } | undefined {
  if (write.eventName !== 'ObjectCreated:Put') return undefined;
  const eTag = response.etag;
  if (typeof eTag !== 'string' || eTag === '') return undefined;
  const decoded = request['x-amz-decoded-content-length'];
  const chunked =
    /aws-chunked/i.test(String(request['content-encoding'] ?? '')) ||
    /STREAMING-/i.test(String(request['x-amz-content-sha256'] ?? '')) ||
    request['transfer-encoding'] !== undefined;
  const length = decoded !== undefined ? decoded : chunked ? undefined : request['content-length'];
  const size = typeof length === 'string' && /^\d+$/.test(length) ? Number(length) : undefined;
  if (size === undefined) return undefined;
  return { size, eTag: eTag.replaceAll('"', '') };
}

function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}
