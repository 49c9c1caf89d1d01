import {
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';

/** service → member endpoints ("host:port" or "http://host:port"), as a desired state's `upstreams`. */
export type UpstreamTable = Readonly<Record<string, readonly string[]>>;

export const UPSTREAM_HEADER = 'x-fleetfold-upstream';

export interface LbProxyOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** 0 or absent: a free port. */
  port?: number;
  upstreams: UpstreamTable;
  /** How long a member may take to answer; default 10 s. */
  timeoutMs?: number;
  /** Request bodies are buffered (so a refused attempt can go to the next member); default 1 MiB. */
  maxBodyBytes?: number;
}

interface Member {
  /** As written in the state; what X-Fleetfold-Upstream names. */
  label: string;
  host: string;
  port: number;
}

interface Pool {
  members: readonly Member[];
  /** Round-robin position; per pool, so an update starts every service afresh. */
  next: number;
}

/** Built whole, then swapped in with one assignment: a request sees the old table or the new, never a mix. */
type Routes = ReadonlyMap<string, Pool>;

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/**
 * A host's load balancer in local mode: an HTTP reverse proxy, round-robin over the current members of
 * each balanced service. A request goes to `/<service>/…` when the path names a balanced service (the prefix
 * is stripped), else to the only service when there is just one. A member that refuses the connection is
 * skipped for the next one; when none answers the client gets a 502 problem document.
 */
export class LbProxy {
  readonly #options: LbProxyOptions;
  readonly #server: Server;
  #routes: Routes;
  #port: number | undefined;

  constructor(options: LbProxyOptions) {
    this.#options = options;
    this.#routes = buildRoutes(options.upstreams);
    this.#server = createServer((request, response) => void this.#handle(request, response));
  }

  /** Listens; resolves with the port. */
  start(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.#options.port ?? 0, this.#options.host ?? '127.0.0.1', () => {
        this.#server.off('error', reject);
        this.#port = (this.#server.address() as AddressInfo).port;
        resolve(this.#port);
      });
    });
  }

  get port(): number | undefined {
    return this.#port;
  }

  /** Replaces the member lists; throws (keeping the current table) when a member is not host:port or a URL. */
  update(upstreams: UpstreamTable): void {
    this.#routes = buildRoutes(upstreams);
  }

  members(): Record<string, string[]> {
    return Object.fromEntries(
      [...this.#routes].map(([service, pool]) => [service, pool.members.map((m) => m.label)]),
    );
  }

  async stop(): Promise<void> {
    if (!this.#server.listening) return;
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeAllConnections();
    await closed;
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const routes = this.#routes;
    const route = pickRoute(routes, request.url ?? '/');
    if (!route) {
      problem(response, 404, 'no balanced service matches this path', { services: [...routes.keys()] });
      request.resume();
      return;
    }
    let body: Buffer;
    try {
      body = await readBody(request, this.#options.maxBodyBytes ?? 1_048_576);
    } catch {
      problem(response, 413, 'request body too large to balance');
      return;
    }
    const { pool, service, path } = route;
    const count = pool.members.length;
    if (count === 0) {
      problem(response, 502, `no members for ${service}`, { service });
      return;
    }
    const start = pool.next % count;
    pool.next = (pool.next + 1) % count;
    const refused: string[] = [];
    for (let attempt = 0; attempt < count; attempt += 1) {
      const member = pool.members[(start + attempt) % count] as Member;
      const result = await this.#forward(request, response, member, path, body);
      if (result === 'done') return;
      refused.push(member.label);
    }
    problem(response, 502, `no member of ${service} answered`, { service, refused });
  }

  /** 'refused' only when nothing was sent to the client yet, so the next member can still answer. */
  #forward(
    request: IncomingMessage,
    response: ServerResponse,
    member: Member,
    path: string,
    body: Buffer,
  ): Promise<'done' | 'refused'> {
    return new Promise((resolve) => {
      const upstream = httpRequest(
        {
          host: member.host,
          port: member.port,
          method: request.method,
          path,
          headers: forwardHeaders(request, member, body.length),
          // A fresh connection per request: a pooled socket to a member that has gone would fail as a reset,
          // not as a refusal, and could not be retried safely.
          agent: false,
          timeout: this.#options.timeoutMs ?? 10_000,
        },
        (answer) => {
          const headers: OutgoingHttpHeaders = {};
          for (const [name, value] of Object.entries(answer.headers)) {
            if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
          }
          headers[UPSTREAM_HEADER] = member.label;
          response.writeHead(answer.statusCode ?? 502, headers);
          answer.pipe(response);
          answer.once('end', () => resolve('done'));
          answer.once('error', () => {
            response.destroy();
            resolve('done');
          });
        },
      );
      upstream.once('timeout', () => upstream.destroy(new Error('upstream timed out')));
      upstream.once('error', (error: NodeJS.ErrnoException) => {
        if (response.headersSent) {
          response.destroy();
          resolve('done');
        } else if (error.code === 'ECONNREFUSED') {
          resolve('refused');
        } else {
          problem(response, 502, `member ${member.label} failed: ${error.message}`, {
            upstream: member.label,
          });
          resolve('done');
        }
      });
      upstream.end(body);
    });
  }
}

function buildRoutes(upstreams: UpstreamTable): Routes {
  const routes = new Map<string, Pool>();
  for (const [service, endpoints] of Object.entries(upstreams)) {
    routes.set(service, { members: endpoints.map(parseMember), next: 0 });
  }
  return routes;
}

export function parseMember(endpoint: string): Member {
  const invalid = () => new Error(`upstream "${endpoint}" must be host:port or http://host:port`);
  let url: URL;
  try {
    url = new URL(/^[a-z]+:\/\//i.test(endpoint) ? endpoint : `http://${endpoint}`);
  } catch {
    throw invalid();
  }
  if (url.protocol !== 'http:' || !url.hostname || !url.port) throw invalid();
  return { label: endpoint, host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port) };
}

function pickRoute(routes: Routes, url: string): { pool: Pool; service: string; path: string } | undefined {
  const match = /^\/([^/?#]+)(.*)$/.exec(url);
  const first = match?.[1];
  if (first !== undefined) {
    const pool = routes.get(first);
    if (pool) {
      const rest = match?.[2] ?? '';
      return { pool, service: first, path: rest.startsWith('/') ? rest : `/${rest}` };
    }
  }
  if (routes.size === 1) {
    const [service, pool] = [...routes][0] as [string, Pool];
    return { pool, service, path: url };
  }
  return undefined;
}

function forwardHeaders(request: IncomingMessage, member: Member, length: number): OutgoingHttpHeaders {
  const headers: IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(request.headers)) {
    if (!HOP_BY_HOP.has(name)) headers[name] = value;
  }
  const forwardedFor = request.headers['x-forwarded-for'];
  const client = request.socket.remoteAddress ?? '';
  return {
    ...headers,
    host: `${member.host}:${member.port}`,
    'content-length': String(length),
    'x-forwarded-for': forwardedFor ? `${forwardedFor}, ${client}` : client,
  };
}

function readBody(request: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    // Read to the end even when too large: destroying the request would take the socket, and the answer, with it.
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
    });
    request.once('end', () =>
      size > limit ? reject(new Error('too large')) : resolve(Buffer.concat(chunks)),
    );
    request.once('error', reject);
  });
}

function problem(
  response: ServerResponse,
  status: number,
  detail: string,
  extra: Record<string, unknown> = {},
): void {
  if (response.headersSent) return;
  const titles: Record<number, string> = { 404: 'Not Found', 413: 'Content Too Large', 502: 'Bad Gateway' };
  response.writeHead(status, { 'content-type': 'application/problem+json; charset=utf-8' });
  response.end(
    JSON.stringify({ type: 'about:blank', title: titles[status] ?? 'Error', status, detail, ...extra }),
  );
}
