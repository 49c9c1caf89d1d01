import type { Endpoint } from './endpoints.ts';
import { signRequest } from './sigv4.ts';

/** An RFC 9457 problem as the API sends it; only the standard members are relied on. */
export interface Problem {
  type?: string;
  title?: string;
  status: number;
  detail?: string;
  [member: string]: unknown;
}

/** The API refused a request (a problem document), or could not be reached: exit code 1. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  readonly problem: Problem;

  constructor(problem: Problem) {
    super(describeProblem(problem));
    this.problem = problem;
  }
}

export function describeProblem(problem: Problem): string {
  const title = problem.title ?? `HTTP ${problem.status}`;
  return problem.detail ? `${title}: ${problem.detail}` : title;
}

export interface ApiRequestOptions {
  query?: Record<string, string | undefined>;
  /** Sent as JSON. */
  body?: unknown;
  /** Sent as it is, e.g. a YAML definition; wins over `body`. */
  raw?: { text: string; contentType: string };
  accept?: 'json' | 'xml';
  headers?: Record<string, string>;
}

export interface ApiResult {
  status: number;
  headers: Headers;
  text: string;
}

/** How long one request may take, answer read included, unless --timeout or FLEETFOLD_TIMEOUT says otherwise. */
export const DEFAULT_TIMEOUT_MS = 30_000;

export class ApiClient {
  readonly #endpoint: Endpoint;
  readonly #fetch: typeof fetch;
  readonly #timeoutMs: number;

  constructor(endpoint: Endpoint, fetchImpl: typeof fetch = fetch, timeoutMs = DEFAULT_TIMEOUT_MS) {
    this.#endpoint = endpoint;
    this.#fetch = fetchImpl;
    this.#timeoutMs = timeoutMs;
  }

  get api(): string {
    return this.#endpoint.api;
  }

  /** Any status below 400 is a result; 4xx/5xx become an ApiError carrying the problem. */
  async request(method: string, path: string, options: ApiRequestOptions = {}): Promise<ApiResult> {
    const url = new URL(this.#endpoint.api + path);
    for (const [name, value] of Object.entries(options.query ?? {}))
      if (value !== undefined) url.searchParams.set(name, value);
    const body = options.raw?.text ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
    const contentType = options.raw?.contentType ?? 'application/json';
    const headers: Record<string, string> = {
      accept: options.accept === 'xml' ? 'application/xml' : 'application/json',
      ...(body !== undefined ? { 'content-type': contentType } : {}),
      ...options.headers,
    };
    const auth = this.#endpoint.auth;
    const sent =
      auth.kind === 'bearer'
        ? { ...headers, authorization: `Bearer ${auth.token}` }
        : await signRequest({ method, url, headers, ...(body !== undefined ? { body } : {}) }, auth);

    // One signal for the exchange and the answer's body: a server that sends headers and then stalls is as stuck.
    const signal = AbortSignal.timeout(this.#timeoutMs);
    let response: Response;
    let text: string;
    try {
      response = await this.#fetch(url, {
        method,
        headers: sent,
        signal,
        ...(body !== undefined ? { body } : {}),
      });
      text = await response.text();
    } catch (error) {
      if (signal.aborted) throw this.#timedOut(method, url);
      const reason = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new ApiError({
        status: 0,
        title: 'API unreachable',
        detail: `${method} ${url.origin}${url.pathname} failed (${reason?.code ?? reason?.message ?? (error as Error).message}); is the API at ${this.#endpoint.api} (from ${this.#endpoint.source}) running?`,
      });
    }
    if (response.status >= 400) throw new ApiError(problemFrom(response, text));
    return { status: response.status, headers: response.headers, text };
  }

  #timedOut(method: string, url: URL): ApiError {
    const seconds = this.#timeoutMs / 1000;
    return new ApiError({
      status: 0,
      title: 'API timed out',
      detail: `${method} ${url.origin}${url.pathname} had no answer within ${seconds} s (raise it with --timeout SECONDS or FLEETFOLD_TIMEOUT); is the API at ${this.#endpoint.api} (from ${this.#endpoint.source}) overloaded or stuck?`,
    });
  }

  async json<T>(method: string, path: string, options: Omit<ApiRequestOptions, 'accept'> = {}) {
    const result = await this.request(method, path, { ...options, accept: 'json' });
    return { ...result, body: (result.text === '' ? undefined : JSON.parse(result.text)) as T };
  }
}

/** A problem document when the API sent one; otherwise (a proxy's HTML, an empty 502) the status and body. */
function problemFrom(response: Response, text: string): Problem {
  try {
    const parsed = JSON.parse(text) as Partial<Problem> & { message?: unknown };
    if (parsed && typeof parsed === 'object') {
      // API Gateway's own refusals (IAM, throttling) are `{"message": …}`, not problem documents.
      const detail =
        typeof parsed.detail === 'string'
          ? parsed.detail
          : typeof parsed.message === 'string'
            ? parsed.message
            : undefined;
      return {
        ...parsed,
        status: typeof parsed.status === 'number' ? parsed.status : response.status,
        title:
          typeof parsed.title === 'string' ? parsed.title : response.statusText || `HTTP ${response.status}`,
        ...(detail !== undefined ? { detail } : {}),
      };
    }
  } catch {
    // not JSON: fall through
  }
  const snippet = text.trim().slice(0, 200);
  return {
    status: response.status,
    title: response.statusText || `HTTP ${response.status}`,
    ...(snippet ? { detail: snippet } : {}),
  };
}
