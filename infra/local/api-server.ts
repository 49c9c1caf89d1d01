import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { PROBLEM_CONTENT_TYPE, type ProblemDocument, problem } from '../../shared/problem.ts';
import { listenOnLoopback } from './listen.ts';

/*
 * API Gateway's stand-in: a REST API with a `{proxy+}` resource and Lambda proxy integration. In AWS the
 * API is behind IAM auth; here a bearer token kept in the state folder plays that part.
 */

export type ApiHandler = (event: APIGatewayProxyEvent) => Promise<APIGatewayProxyResult>;

export interface ApiServerOptions {
  handler: ApiHandler;
  /** Every request must carry `Authorization: Bearer <token>`. */
  token: string;
  /** 0 picks a free port; default 0. Listens on 127.0.0.1 only. */
  port?: number;
  /** Default 1 MiB, the order of API Gateway's payload limit (10 MB) scaled to what this API accepts. */
  maxBodyBytes?: number;
  /** Default `local`. */
  stage?: string;
  /** A handler that threw (the client gets a generic 500). */
  onError?: (error: unknown, event: APIGatewayProxyEvent) => void;
}

export interface ApiServer {
  url: string;
  port: number;
  stop(): Promise<void>;
}

export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
const ACCOUNT_ID = '000000000000';

function sendProblem(
  res: ServerResponse,
  document: ProblemDocument,
  extraHeaders: Record<string, string> = {},
): void {
  const body = JSON.stringify(document);
  res.writeHead(document.status, {
    'content-type': PROBLEM_CONTENT_TYPE,
    'content-length': Buffer.byteLength(body),
    ...extraHeaders,
  });
  res.end(body);
}

/** Compares in time independent of where the strings differ, and of their lengths (both are hashed first). */
export function tokensMatch(presented: string, expected: string): boolean {
  const digest = (value: string) => createHash('sha256').update(value).digest();
  return timingSafeEqual(digest(presented), digest(expected));
}

function bearerToken(header: string | undefined): string | undefined {
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header ?? '');
  return match?.[1];
}

class BodyTooLarge extends Error {}

function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const collect = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        // Stop keeping it; refuseUnread discards the rest.
        req.off('data', collect);
        reject(new BodyTooLarge());
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', collect);
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** How much of a refused body is read and thrown away, and for how long, before the connection is cut. */
const DISCARD_LIMIT_BYTES = 64 * 1024 * 1024;
const DISCARD_LIMIT_MS = 10_000;

/**
 * Answers without reading the body, then discards what the client still sends. Closing at once would leave
 * unread bytes in the socket, which makes the kernel reset the connection, and most clients (curl among them)
 * then report the reset instead of the answer; so the answer goes first and the rest is drained, up to a limit.
 */
function refuseUnread(
  req: IncomingMessage,
  res: ServerResponse,
  document: ProblemDocument,
  extraHeaders: Record<string, string> = {},
): void {
  sendProblem(res, document, { connection: 'close', ...extraHeaders });
  let discarded = 0;
  const cut = setTimeout(() => req.socket.destroy(), DISCARD_LIMIT_MS);
  cut.unref();
  req.on('data', (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > DISCARD_LIMIT_BYTES) req.socket.destroy();
  });
  req.on('close', () => clearTimeout(cut));
  req.resume();
}

/** Builds the event API Gateway's Lambda proxy integration sends for this request. */
export function toApiGatewayEvent(
  req: IncomingMessage,
  body: Buffer,
  context: { requestId: string; stage: string; now: Date },
): APIGatewayProxyEvent {
  const url = new URL(req.url ?? '/', 'http://api.invalid');
  const path = safeDecode(url.pathname);
  const headers: Record<string, string> = {};
  const multiValueHeaders: Record<string, string[]> = {};
  // rawHeaders keeps the case the client sent, as API Gateway does.
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i] as string;
    const value = req.rawHeaders[i + 1] as string;
    headers[name] = value;
    multiValueHeaders[name] = [...(multiValueHeaders[name] ?? []), value];
  }
  const query: Record<string, string> = {};
  const multiValueQuery: Record<string, string[]> = {};
  for (const [name, value] of url.searchParams) {
    query[name] = value;
    multiValueQuery[name] = [...(multiValueQuery[name] ?? []), value];
  }
  const hasQuery = Object.keys(query).length > 0;
  // A proxy API has ANY on `/` and on `/{proxy+}`; the root matches only the former.
  const isRoot = path === '/';
  const resource = isRoot ? '/' : '/{proxy+}';
  const method = req.method ?? 'GET';
  const sourceIp = req.socket.remoteAddress ?? '127.0.0.1';
  return {
    httpMethod: method,
    path,
    resource,
    headers,
    multiValueHeaders,
    queryStringParameters: hasQuery ? query : null,
    multiValueQueryStringParameters: hasQuery ? multiValueQuery : null,
    pathParameters: isRoot ? null : { proxy: path.slice(1) },
    stageVariables: null,
    body: body.length > 0 ? body.toString('utf8') : null,
    isBase64Encoded: false,
    requestContext: {
      accountId: ACCOUNT_ID,
      apiId: 'local',
      authorizer: undefined,
      domainName: req.headers.host ?? '127.0.0.1',
      protocol: `HTTP/${req.httpVersion}`,
      httpMethod: method,
      path: `/${context.stage}${path}`,
      stage: context.stage,
      requestId: context.requestId,
      requestTime: context.now.toUTCString(),
      requestTimeEpoch: context.now.getTime(),
      resourceId: 'local',
      resourcePath: resource,
      identity: {
        accessKey: null,
        accountId: ACCOUNT_ID,
        apiKey: null,
        apiKeyId: null,
        caller: 'local-operator',
        clientCert: null,
        cognitoAuthenticationProvider: null,
        cognitoAuthenticationType: null,
        cognitoIdentityId: null,
        cognitoIdentityPoolId: null,
        principalOrgId: null,
        sourceIp,
        user: 'local-operator',
        userAgent: req.headers['user-agent'] ?? null,
        userArn: `arn:aws:iam::${ACCOUNT_ID}:user/local-operator`,
      },
    },
  };
}

function safeDecode(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

function writeResult(res: ServerResponse, result: APIGatewayProxyResult, requestId: string): void {
  const body = Buffer.from(result.body ?? '', result.isBase64Encoded ? 'base64' : 'utf8');
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(result.headers ?? {}))
    headers[name.toLowerCase()] = String(value);
  // multiValueHeaders win over headers of the same name, as in API Gateway.
  for (const [name, values] of Object.entries(result.multiValueHeaders ?? {})) {
    headers[name.toLowerCase()] = values.map(String);
  }
  headers['content-length'] = String(body.length);
  headers['x-amzn-requestid'] = requestId;
  res.writeHead(result.statusCode, headers);
  res.end(body);
}

export async function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const stage = options.stage ?? 'local';

  const tooLarge = problem(413, 'too-large', `request bodies are limited to ${maxBodyBytes} bytes`);

  /** Whatever can be refused from the headers alone: a missing or wrong token, a declared length over the limit. */
  const refusedByHeaders = (req: IncomingMessage, res: ServerResponse): boolean => {
    const presented = bearerToken(req.headers.authorization);
    if (presented === undefined || !tokensMatch(presented, options.token)) {
      const detail =
        presented === undefined
          ? 'send the token from .fleetfold/token as "Authorization: Bearer <token>"'
          : 'the bearer token is not the one in .fleetfold/token';
      refuseUnread(req, res, problem(401, 'unauthorized', detail), {
        'www-authenticate': 'Bearer realm="fleetfold"',
      });
      return true;
    }
    if (Number(req.headers['content-length'] ?? 0) > maxBodyBytes) {
      refuseUnread(req, res, tooLarge);
      return true;
    }
    return false;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const requestId = randomUUID();
    let body: Buffer;
    try {
      body = await readBody(req, maxBodyBytes);
    } catch (error) {
      if (error instanceof BodyTooLarge) refuseUnread(req, res, tooLarge);
      else res.destroy();
      return;
    }
    const event = toApiGatewayEvent(req, body, { requestId, stage, now: new Date() });
    let result: APIGatewayProxyResult;
    try {
      result = await options.handler(event);
    } catch (error) {
      options.onError?.(error, event);
      sendProblem(res, problem(500, 'internal', `the request failed unexpectedly (request id ${requestId})`));
      return;
    }
    writeResult(res, result, requestId);
  };

  const server = createServer((req, res) => {
    if (refusedByHeaders(req, res)) return;
    handle(req, res).catch(() => res.destroy());
  });
  // A client that sent "Expect: 100-continue" (curl does for large bodies) is answered before it sends the body.
  server.on('checkContinue', (req, res) => {
    if (refusedByHeaders(req, res)) return;
    res.writeContinue();
    handle(req, res).catch(() => res.destroy());
  });
  const port = await listenOnLoopback(server, options.port);
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeIdleConnections();
      }),
  };
}
