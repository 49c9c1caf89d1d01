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
import { matchRoute, type Route } from './router.ts';
import { listAlarmsRoute } from './routes/alarms.ts';
import {
  deleteGroup,
  getGroup,
  groupHistory,
  listGroups,
  putGroup,
  removeService,
  requestRollout,
  startGroup,
  startService,
  stopGroup,
  stopService,
} from './routes/groups.ts';
import {
  getHost,
  hostDesired,
  hostDiff,
  hostDrift,
  hostHistory,
  hostStateAt,
  listHosts,
  registerHost,
} from './routes/hosts.ts';
import { abortRollout, getRollout, pauseRollout, resumeRollout, revertRollout } from './routes/rollouts.ts';

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

export const ROUTES: readonly Route[] = [
  { pattern: '/hosts', methods: { GET: listHosts, POST: registerHost } },
  { pattern: '/hosts/{id}', methods: { GET: getHost } },
  { pattern: '/hosts/{id}/history', methods: { GET: hostHistory } },
  { pattern: '/hosts/{id}/state', methods: { GET: hostStateAt } },
  { pattern: '/hosts/{id}/diff', methods: { GET: hostDiff } },
  { pattern: '/hosts/{id}/desired', methods: { GET: hostDesired } },
  { pattern: '/hosts/{id}/drift', methods: { GET: hostDrift } },
  { pattern: '/groups', methods: { GET: listGroups } },
  { pattern: '/groups/{name}', methods: { GET: getGroup, PUT: putGroup, DELETE: deleteGroup } },
  { pattern: '/groups/{name}/start', methods: { POST: startGroup } },
  { pattern: '/groups/{name}/stop', methods: { POST: stopGroup } },
  { pattern: '/groups/{name}/history', methods: { GET: groupHistory } },
  { pattern: '/groups/{name}/rollouts', methods: { POST: requestRollout } },
  { pattern: '/groups/{name}/services/{service}', methods: { DELETE: removeService } },
  { pattern: '/groups/{name}/services/{service}/stop', methods: { POST: stopService } },
  { pattern: '/groups/{name}/services/{service}/start', methods: { POST: startService } },
  { pattern: '/rollouts/{id}', methods: { GET: getRollout } },
  { pattern: '/rollouts/{id}/pause', methods: { POST: pauseRollout } },
  { pattern: '/rollouts/{id}/resume', methods: { POST: resumeRollout } },
  { pattern: '/rollouts/{id}/abort', methods: { POST: abortRollout } },
  { pattern: '/rollouts/{id}/revert', methods: { POST: revertRollout } },
  { pattern: '/alarms', methods: { GET: listAlarmsRoute } },
];

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
      const match = matchRoute(ROUTES, request.method, request.path);
      if (match.kind === 'no-route') {
        return problemResult(problem(404, 'no-route', `no resource at ${request.path}`), request.path);
      }
      if (match.kind === 'wrong-method') {
        const detail = `${request.method} is not supported on ${request.path}; use ${match.allow.join(' or ')}`;
        return problemResult(problem(405, 'method-not-allowed', detail), request.path, {
          Allow: match.allow.join(', '),
        });
      }
      return render(await match.action(deps, request, ...match.parameters), request.format);
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
