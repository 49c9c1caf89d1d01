import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import {
  Agent,
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import { GetQueueUrlCommand, ListQueueTagsCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { signRequest } from '../../cli/sigv4.ts';
import { INBOX_QUEUE_PREFIX } from '../../shared/groups/fanout.ts';
import { isAllowed, ownInboxStatement, type PolicyStatementJson } from '../../shared/groups/host-access.ts';
import { listenOnLoopback } from './listen.ts';

/*
 * Local mode's stand-in for what IAM does to a host's SQS requests. fauxqs checks no signature, so with it
 * alone any agent could read and delete any other's inbox. Agents talk to this proxy instead: it verifies
 * each request's SigV4 signature with the key of the instance it names (each local instance gets its own
 * access key, its instance id, as each EC2 instance gets its own role session), then evaluates the same
 * statement the CDK host role carries (shared/groups/host-access.ts) with `ec2:SourceInstanceARN` and the
 * queue's tags as the request context, and forwards only what that statement allows. The control plane's
 * own clients keep talking to fauxqs directly, as the reconcile's role is another principal.
 */

export interface SqsGuardOptions {
  /** fauxqs's endpoint: allowed requests go there untouched. */
  upstream: string;
  /** Talks to fauxqs directly, to read the tags a decision depends on. */
  sqs: SQSClient;
  region: string;
  accountId: string;
  /** `arn:aws:ec2:<region>:<account>:instance/`: a caller's instance ARN is this plus its access key id. */
  instanceArnPrefix: string;
  /** What hosts may do; default: the host role's inbox statement over `fleetfold-inbox-*`. */
  statements?: readonly PolicyStatementJson[];
  /** How far a request's X-Amz-Date may be from now, as SigV4 allows; default 15 minutes. */
  maxClockSkewMs?: number;
  now?: () => Date;
  /** 0 (default) picks a free port; the guard listens on 127.0.0.1 only. */
  port?: number;
}

export interface LocalCredentials {
  accessKeyId: string;
  secretAccessKey: string;
}

export interface SqsGuard {
  /** The SQS endpoint agents use. */
  endpoint: string;
  /** The credentials of one local instance (what its role session is on EC2). */
  credentialsFor(instanceId: string): LocalCredentials;
  /** Requests refused so far. */
  readonly refused: number;
  stop(): Promise<void>;
}

/** A request's claim and what signing it proves, from its Authorization header. */
interface SignatureClaim {
  accessKeyId: string;
  day: string;
  region: string;
  service: string;
  signedHeaders: string[];
  signature: string;
}

const AUTHORIZATION =
  /^AWS4-HMAC-SHA256 Credential=([^/\s]+)\/(\d{8})\/([^/\s]+)\/([^/\s]+)\/aws4_request,\s*SignedHeaders=([a-z0-9;-]+),\s*Signature=([0-9a-f]{64})$/;

export function parseAuthorization(header: string | undefined): SignatureClaim | undefined {
  const match = header === undefined ? null : AUTHORIZATION.exec(header.trim());
  if (!match) return undefined;
  const [, accessKeyId, day, region, service, signedHeaders, signature] = match as unknown as string[];
  return {
    accessKeyId: accessKeyId as string,
    day: day as string,
    region: region as string,
    service: service as string,
    signedHeaders: (signedHeaders as string).split(';'),
    signature: signature as string,
  };
}

/** `20260102T030405Z` → the Date it names. */
export function parseAmzDate(value: string | undefined): Date | undefined {
  const match = value === undefined ? null : /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (!match) return undefined;
  const [, y, mo, d, h, mi, s] = match.map(Number) as number[];
  return new Date(Date.UTC(y as number, (mo as number) - 1, d, h, mi, s));
}

/** The IAM action a JSON-protocol SQS operation is authorized as (a batch form as its single one). */
export function sqsActionOf(operation: string): string {
  return `sqs:${operation.replace(/Batch$/, '')}`;
}

/** Thrown for a request the guard refuses: the SQS error code, HTTP status and message it answers with. */
class Refusal extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export async function startSqsGuard(options: SqsGuardOptions): Promise<SqsGuard> {
  const upstream = new URL(options.upstream);
  const now = options.now ?? (() => new Date());
  const maxSkew = options.maxClockSkewMs ?? 15 * 60_000;
  const statements = options.statements ?? [
    ownInboxStatement(`arn:aws:sqs:${options.region}:${options.accountId}:${INBOX_QUEUE_PREFIX}*`),
  ];
  // Never persisted: agents are children of this process and get their keys again when it restarts.
  const masterKey = randomBytes(32);
  const secretOf = (accessKeyId: string) =>
    createHmac('sha256', masterKey).update(accessKeyId).digest('base64url');
  const agent = new Agent({ keepAlive: true });
  let refused = 0;

  const verifySignature = async (req: IncomingMessage, body: Buffer): Promise<SignatureClaim> => {
    const claim = parseAuthorization(req.headers.authorization);
    if (!claim) throw new Refusal('MissingAuthenticationToken', 403, 'the request is not SigV4-signed');
    const signedAt = parseAmzDate(headerValue(req.headers, 'x-amz-date'));
    if (!signedAt || !claim.signedHeaders.includes('x-amz-date') || !claim.signedHeaders.includes('host')) {
      throw new Refusal('IncompleteSignature', 403, 'host and x-amz-date must be signed');
    }
    if (Math.abs(now().getTime() - signedAt.getTime()) > maxSkew) {
      throw new Refusal('RequestExpired', 403, `signed at ${signedAt.toISOString()}, too far from now`);
    }
    if (claim.service !== 'sqs' || claim.region !== options.region) {
      throw new Refusal('SignatureDoesNotMatch', 403, `credential scope must be ${options.region}/sqs`);
    }
    // The same signer the SDK uses, over exactly the headers the client says it signed.
    const headers: Record<string, string> = {};
    for (const name of claim.signedHeaders) {
      if (name !== 'host') headers[name] = headerValue(req.headers, name) ?? '';
    }
    const expected = await signRequest(
      {
        method: req.method ?? 'POST',
        url: new URL(req.url ?? '/', `http://${req.headers.host ?? '127.0.0.1'}`),
        headers,
        body: body.toString('utf8'),
      },
      {
        region: options.region,
        service: 'sqs',
        credentials: { accessKeyId: claim.accessKeyId, secretAccessKey: secretOf(claim.accessKeyId) },
        signingDate: signedAt,
      },
    );
    const recomputed = parseAuthorization(expected.authorization);
    const matches =
      recomputed !== undefined &&
      recomputed.signedHeaders.join(';') === claim.signedHeaders.join(';') &&
      timingSafeEqual(Buffer.from(recomputed.signature), Buffer.from(claim.signature));
    if (!matches) {
      throw new Refusal(
        'SignatureDoesNotMatch',
        403,
        'The request signature we calculated does not match the signature you provided.',
      );
    }
    return claim;
  };

  const authorize = async (claim: SignatureClaim, operation: string, input: Record<string, unknown>) => {
    const queueName =
      typeof input.QueueName === 'string'
        ? input.QueueName
        : typeof input.QueueUrl === 'string'
          ? new URL(input.QueueUrl).pathname.split('/').pop()
          : undefined;
    const resource = `arn:aws:sqs:${options.region}:${options.accountId}:${queueName ?? '*'}`;
    const action = sqsActionOf(operation);
    const sourceInstanceArn = `${options.instanceArnPrefix}${claim.accessKeyId}`;
    const context: Record<string, string> = {
      'ec2:SourceInstanceARN': sourceInstanceArn,
      'aws:userid': `LOCALHOSTROLE:${claim.accessKeyId}`,
    };
    if (queueName) {
      for (const [key, value] of Object.entries(await tagsOf(options.sqs, queueName))) {
        context[`aws:ResourceTag/${key}`] = value;
      }
    }
    if (!isAllowed(statements, { action, resource, context })) {
      throw new Refusal(
        'AccessDenied',
        403,
        `User: ${sourceInstanceArn} is not authorized to perform: ${action.toLowerCase()} on resource: ${resource} because no identity-based policy allows the ${action.toLowerCase()} action`,
      );
    }
  };

  const forward = (req: IncomingMessage, body: Buffer, res: ServerResponse) => {
    const upstreamReq = httpRequest(
      {
        protocol: upstream.protocol,
        hostname: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
        agent,
      },
      (upstreamRes) => {
        res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
        upstreamRes.pipe(res);
      },
    );
    upstreamReq.on('error', (error) => {
      if (res.headersSent) res.destroy();
      else refuse(res, new Refusal('ServiceUnavailable', 502, error.message), false);
    });
    upstreamReq.end(body);
  };

  const refuse = (res: ServerResponse, refusal: Refusal, count = true) => {
    if (count) refused += 1;
    // The JSON protocol's error shape; x-amzn-query-error is where SDKs read SQS's (query-compatible) code.
    res
      .writeHead(refusal.status, {
        'content-type': 'application/x-amz-json-1.0',
        'x-amzn-query-error': `${refusal.code};Sender`,
      })
      .end(JSON.stringify({ __type: `com.amazon.coral.service#${refusal.code}`, message: refusal.message }));
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const body = await readBody(req);
    try {
      const claim = await verifySignature(req, body);
      const target = headerValue(req.headers, 'x-amz-target');
      const operation = target?.startsWith('AmazonSQS.') ? target.slice('AmazonSQS.'.length) : undefined;
      if (!operation) {
        throw new Refusal('InvalidAction', 400, 'the local SQS guard speaks the JSON protocol only');
      }
      let input: Record<string, unknown>;
      try {
        input = JSON.parse(body.toString('utf8') || '{}') as Record<string, unknown>;
      } catch {
        throw new Refusal('MalformedQueryString', 400, 'the body is not JSON');
      }
      await authorize(claim, operation, input);
      forward(req, body, res);
    } catch (error) {
      if (error instanceof Refusal) refuse(res, error);
      else refuse(res, new Refusal('InternalFailure', 500, String(error)), false);
    }
  };

  const server = createServer((req, res) => void handle(req, res));
  const port = await listenOnLoopback(server, options.port);
  return {
    endpoint: `http://127.0.0.1:${port}`,
    credentialsFor: (instanceId) => ({ accessKeyId: instanceId, secretAccessKey: secretOf(instanceId) }),
    get refused() {
      return refused;
    },
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
        agent.destroy();
      }),
  };
}

/** The queue's tags, or none for a queue that does not exist (which is then refused, as IAM would). */
async function tagsOf(sqs: SQSClient, queueName: string): Promise<Record<string, string>> {
  try {
    const { QueueUrl } = await sqs.send(new GetQueueUrlCommand({ QueueName: queueName }));
    if (!QueueUrl) return {};
    return (await sqs.send(new ListQueueTagsCommand({ QueueUrl }))).Tags ?? {};
  } catch (error) {
    const name = (error as { name?: string }).name;
    if (name === 'QueueDoesNotExist' || name === 'AWS.SimpleQueueService.NonExistentQueue') return {};
    throw error;
  }
}

function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}
