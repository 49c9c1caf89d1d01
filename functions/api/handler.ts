import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import {
  isUnexpected,
  PROBLEM_CONTENT_TYPE,
  type ProblemDocument,
  problem,
  problemOf,
} from '../../shared/problem.ts';
import { toXml } from '../../shared/xml.ts';
import type { ApiDeps } from './deps.ts';
import {
  type ApiRequest,
  type ApiResponse,
  definedQuery,
  type Format,
  lowerCaseHeaders,
  negotiateFormat,
} from './http.ts';
import { ROUTE_TABLE } from './route-table.ts';
import { matchRoute } from './router.ts';

export { newHostSecret } from '../../shared/signing.ts';
export { type ApiConfig, type GroupsApiConfig, loadApiConfig, loadGroupsApiConfig } from './config.ts';
export type { ApiDeps } from './deps.ts';
export type { HostView } from './routes/hosts.ts';

export type ApiHandler = (event: APIGatewayProxyEvent) => Promise<APIGatewayProxyResult>;

/** The local HTTP server builds events with only these members, so nothing else may be relied on. */
export type ApiEvent = Pick<
  APIGatewayProxyEvent,
  'httpMethod' | 'path' | 'headers' | 'queryStringParameters' | 'body' | 'isBase64Encoded'
>;

export { randomIdSuffix } from './ids.ts';

const CONTENT_TYPES: Record<Format, string> = {
  json: 'application/json; charset=utf-8',
  xml: 'application/xml; charset=utf-8',
};

/** Responses describe live fleet state: no cache, proxy or browser may keep them. */
const COMMON_HEADERS = { 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' };

export function createApiHandler(deps: ApiDeps): ApiHandler {
  return async (event: ApiEvent) => {
    try {
      const request = toRequest(event);
      const match = matchRoute(ROUTE_TABLE, request.method, request.path);
      if (match.kind === 'no-route') {
        return problemResult(problem(404, 'no-route', `no resource at ${request.path}`), request.path);
      }
      if (match.kind === 'wrong-method') {
        const detail = `${request.method} is not supported on ${request.path}; use ${match.allow.join(' or ')}`;
        return problemResult(problem(405, 'method-not-allowed', detail), request.path, {
          Allow: match.allow.join(', '),
        });
      }
      const { route, parameters } = match;
      const format = route.representations === 'json' ? 'json' : request.format;
      return render(await route.action(deps, request, ...parameters), format);
    } catch (error) {
      if (isUnexpected(error)) console.error('api: unexpected error', event.httpMethod, event.path, error);
      return problemResult(problemOf(error), event.path);
    }
  };
}

function toRequest(event: ApiEvent): ApiRequest {
  const headers = lowerCaseHeaders(event.headers);
  const { format, ...query } = definedQuery(event.queryStringParameters);
  return {
    method: event.httpMethod.toUpperCase(),
    path: event.path || '/',
    headers,
    query,
    body: event.body ?? undefined,
    isBase64Encoded: event.isBase64Encoded ?? false,
    format: negotiateFormat(format, headers.accept),
  };
}

function render(response: ApiResponse, format: Format): APIGatewayProxyResult {
  const body = format === 'xml' ? toXml(response.xmlRoot, response.body) : JSON.stringify(response.body);
  return {
    statusCode: response.status,
    headers: {
      ...COMMON_HEADERS,
      'Content-Type': CONTENT_TYPES[format],
      Vary: 'Accept',
      ...response.headers,
    },
    body,
  };
}

/** Problems are always JSON, whatever the client asked for: one error format for every client to parse. */
function problemResult(
  document: ProblemDocument,
  instance: string | undefined,
  headers: Record<string, string> = {},
): APIGatewayProxyResult {
  const body = instance ? { ...document, instance } : document;
  return {
    statusCode: document.status,
    headers: { ...COMMON_HEADERS, 'Content-Type': PROBLEM_CONTENT_TYPE, ...headers },
    body: JSON.stringify(body),
  };
}
