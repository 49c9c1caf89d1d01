/**
 * The API, declared once. Each route names its method, path, action and schemas; the api handler matches
 * requests against this table, the API Gateway construct builds its resources and methods from it, and the
 * OpenAPI document (GET /openapi.json, `npm run openapi`) is generated from it. The actions stay in routes/*.ts
 * and validate their own input with the same zod schemas the table documents.
 */
import * as z from 'zod/mini';
import { GroupDefinitionSchema } from '../../shared/groups/definition-schema.ts';
import { Name, RegisterHostRequest } from '../../shared/schemas.ts';
import type { ApiDeps } from './deps.ts';
import { type ApiRequest, type ApiResponse, parseQuery } from './http.ts';
import type { RouteProblem } from './problem-types.ts';
import * as Responses from './response-schemas.ts';
import type { Action, RouteEntry } from './router.ts';
import { AlarmQuery, listAlarmsRoute } from './routes/alarms.ts';
import { CostQuery, getCost } from './routes/cost.ts';
import {
  deleteGroup,
  ListQuery as GroupListQuery,
  getGroup,
  groupHistory,
  listGroups,
  putGroup,
  RolloutBody,
  removeService,
  requestRollout,
  ServiceOperationBody,
  startGroup,
  startService,
  stopGroup,
  stopService,
  YAML_TYPES,
} from './routes/groups.ts';
import { HistoryQuery } from './routes/history.ts';
import {
  DiffQuery,
  getHost,
  ListQuery as HostListQuery,
  hostDesired,
  hostDiff,
  hostDrift,
  hostHistory,
  hostStateAt,
  listHosts,
  registerHost,
  renewUploadGrant,
  StateQuery,
} from './routes/hosts.ts';
import { abortRollout, getRollout, pauseRollout, resumeRollout, revertRollout } from './routes/rollouts.ts';
import { groupScaling } from './routes/scaling.ts';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

/** A schema with a name: the name is its OpenAPI component (and, for request bodies, its API Gateway model). */
export interface NamedSchema {
  name: string;
  schema: z.ZodMiniType;
}

export interface RouteParameter {
  schema: z.ZodMiniType;
  description: string;
}

export interface RouteBody extends NamedSchema {
  /** Media types the action parses, the first being the one API Gateway validates against the schema. */
  mediaTypes: readonly string[];
  required: boolean;
  description: string;
}

export interface RouteResponse extends NamedSchema {
  status: number;
  description: string;
  /** Response headers the action sets. */
  headers?: readonly ('ETag' | 'Location')[];
}

export interface RouteSpec extends RouteEntry {
  method: HttpMethod;
  /** API Gateway's and OpenAPI's spelling: `{name}` is one path segment. */
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  tag: 'hosts' | 'groups' | 'rollouts' | 'alarms' | 'cost' | 'documents';
  action: Action;
  /** One entry per `{name}` in the path, in the order the path names them (the action's arguments). */
  pathParameters: Readonly<Record<string, RouteParameter>>;
  /** The query the action accepts; anything else is refused. */
  query: z.ZodMiniType;
  /** Conditional-request headers the action honours. */
  preconditions?: readonly ('If-Match' | 'If-None-Match')[];
  body?: RouteBody;
  responses: readonly RouteResponse[];
  /** What the route itself may refuse with (every route may also answer 400 validation and 500 internal). */
  problems: readonly RouteProblem[];
  /** JSON and XML (negotiated by Accept or `?format=`), or JSON only. */
  representations: 'json+xml' | 'json';
  /** The XML root element, for JSON+XML routes. */
  xmlRoot?: string;
}

const NoQuery = z.strictObject({});

const NOT_FOUND: RouteProblem = { status: 404, kind: 'not-found' };
const CONFLICT: RouteProblem = { status: 409, kind: 'conflict' };
const PRECONDITION_FAILED: RouteProblem = { status: 412, kind: 'conflict' };
const TOO_LARGE: RouteProblem = { status: 413, kind: 'too-large' };
const UNSUPPORTED_MEDIA_TYPE: RouteProblem = { status: 415, kind: 'validation' };

const hostId = { id: { schema: Name, description: 'The host id.' } };
const groupName = { name: { schema: Name, description: 'The group name.' } };
const groupService = {
  ...groupName,
  service: { schema: Name, description: 'A service of the group.' },
};
const rolloutId = { id: { schema: Name, description: 'The rollout id (`r-…`).' } };

const ok = (name: string, schema: z.ZodMiniType, description: string, status = 200): RouteResponse => ({
  status,
  name,
  schema,
  description,
});

const rolloutAccepted = (description: string): RouteResponse => ({
  ...ok('Rollout', Responses.RolloutView, description, 202),
  headers: ['Location'],
});

const serviceOperationBody: RouteBody = {
  name: 'ServiceOperation',
  schema: ServiceOperationBody,
  mediaTypes: ['application/json'],
  required: false,
  description: 'Which hosts (a selector, default `all`); the body may be left out.',
};

function rolloutCommand(verb: 'pause' | 'resume' | 'abort', action: Action, summary: string): RouteSpec {
  return {
    method: 'POST',
    path: `/rollouts/{id}/${verb}`,
    operationId: `${verb}Rollout`,
    summary,
    tag: 'rollouts',
    action,
    pathParameters: rolloutId,
    query: NoQuery,
    responses: [
      ok('Rollout', Responses.RolloutView, 'The rollout after the command.', verb === 'pause' ? 200 : 202),
    ],
    problems: [NOT_FOUND, CONFLICT],
    representations: 'json+xml',
    xmlRoot: 'rollout',
  };
}

function serviceCommand(method: HttpMethod, verb: 'stop' | 'start' | 'remove', action: Action): RouteSpec {
  return {
    method,
    path:
      verb === 'remove' ? '/groups/{name}/services/{service}' : `/groups/{name}/services/{service}/${verb}`,
    operationId: `${verb}Service`,
    summary:
      verb === 'remove'
        ? 'Remove a service from the hosts, then from the definition (a rollout)'
        : `${verb === 'stop' ? 'Stop' : 'Start'} a service on the selected hosts (a rollout)`,
    tag: 'groups',
    action,
    pathParameters: groupService,
    query: NoQuery,
    body: serviceOperationBody,
    responses: [rolloutAccepted('The rollout that carries the operation out.')],
    problems: [NOT_FOUND, CONFLICT, TOO_LARGE],
    representations: 'json+xml',
    xmlRoot: 'rollout',
  };
}

/** The document routes serve what is generated from this very table (functions/api/published-documents.ts). */
async function serveOpenApi(deps: ApiDeps, request: ApiRequest): Promise<ApiResponse> {
  parseQuery(NoQuery, request.query);
  return { status: 200, xmlRoot: 'openapi', body: await deps.published.openApi() };
}

async function serveSnapshotSchema(deps: ApiDeps, request: ApiRequest): Promise<ApiResponse> {
  parseQuery(NoQuery, request.query);
  return { status: 200, xmlRoot: 'schema', body: await deps.published.snapshotSchema() };
}

export const ROUTE_TABLE: readonly RouteSpec[] = [
  {
    method: 'GET',
    path: '/hosts',
    operationId: 'listHosts',
    summary: 'List hosts, filtered by role, status, group, service and version',
    tag: 'hosts',
    action: listHosts,
    pathParameters: {},
    query: HostListQuery,
    responses: [
      ok('HostList', Responses.HostList, 'One page of hosts; `next` is the cursor of the next page.'),
    ],
    problems: [],
    representations: 'json+xml',
    xmlRoot: 'hosts',
  },
  {
    method: 'POST',
    path: '/hosts',
    operationId: 'registerHost',
    summary: 'Register a host; its secret is shown in this answer only',
    tag: 'hosts',
    action: registerHost,
    pathParameters: {},
    query: NoQuery,
    body: {
      name: 'RegisterHost',
      schema: RegisterHostRequest,
      mediaTypes: ['application/json'],
      required: true,
      description: 'The host to register; without `hostId` one is made from the host type.',
    },
    responses: [
      {
        ...ok('Registration', Responses.Registration, 'The host is registered.', 201),
        headers: ['Location'],
      },
    ],
    problems: [CONFLICT, TOO_LARGE],
    representations: 'json+xml',
    xmlRoot: 'registration',
  },
  {
    method: 'GET',
    path: '/hosts/{id}',
    operationId: 'getHost',
    summary: 'A host: identity, status, observed state, metrics, versions',
    tag: 'hosts',
    action: getHost,
    pathParameters: hostId,
    query: NoQuery,
    responses: [ok('Host', Responses.HostView, 'The host projection (never its secret).')],
    problems: [NOT_FOUND],
    representations: 'json+xml',
    xmlRoot: 'host',
  },
  {
    method: 'POST',
    path: '/hosts/{id}/upload-grant',
    operationId: 'renewUploadGrant',
    summary:
      "A fresh CloudFront upload grant for the host's own prefix (rotation, before the old one expires)",
    tag: 'hosts',
    action: renewUploadGrant,
    pathParameters: hostId,
    query: NoQuery,
    responses: [
      ok(
        'UploadGrant',
        Responses.UploadGrant,
        'The new grant; the agent re-reads its grant file before every upload.',
      ),
    ],
    problems: [NOT_FOUND, CONFLICT],
    representations: 'json+xml',
    xmlRoot: 'upload',
  },
  {
    method: 'GET',
    path: '/hosts/{id}/history',
    operationId: 'hostHistory',
    summary: "A host's events, paged",
    tag: 'hosts',
    action: hostHistory,
    pathParameters: hostId,
    query: HistoryQuery,
    responses: [ok('HostHistory', Responses.HostHistory, 'One page of the host stream.')],
    problems: [NOT_FOUND],
    representations: 'json+xml',
    xmlRoot: 'history',
  },
  {
    method: 'GET',
    path: '/hosts/{id}/state',
    operationId: 'hostStateAt',
    summary: "A host's state as of a stream version (default: the latest)",
    tag: 'hosts',
    action: hostStateAt,
    pathParameters: hostId,
    query: StateQuery,
    responses: [ok('HostStateAt', Responses.HostStateAt, 'The fold of the stream up to `version`.')],
    problems: [NOT_FOUND],
    representations: 'json+xml',
    xmlRoot: 'hostState',
  },
  {
    method: 'GET',
    path: '/hosts/{id}/diff',
    operationId: 'hostDiff',
    summary: 'Path-level changes between two versions of a host (`from`, `to`) or two hosts (`with`)',
    tag: 'hosts',
    action: hostDiff,
    pathParameters: hostId,
    query: DiffQuery,
    responses: [ok('HostDiff', Responses.HostDiff, 'The changes, from the first state to the second.')],
    problems: [NOT_FOUND],
    representations: 'json+xml',
    xmlRoot: 'diff',
  },
  {
    method: 'GET',
    path: '/hosts/{id}/desired',
    operationId: 'hostDesired',
    summary: 'The assignment in force at a stream version (default: the latest)',
    tag: 'hosts',
    action: hostDesired,
    pathParameters: hostId,
    query: StateQuery,
    responses: [ok('HostDesired', Responses.HostDesired, 'The `StateAssigned` in force.')],
    problems: [NOT_FOUND],
    representations: 'json+xml',
    xmlRoot: 'desired',
  },
  {
    method: 'GET',
    path: '/hosts/{id}/drift',
    operationId: 'hostDrift',
    summary: 'The latest assignment against what the host last reported',
    tag: 'hosts',
    action: hostDrift,
    pathParameters: hostId,
    query: NoQuery,
    responses: [ok('HostDrift', Responses.HostDrift, '`changes` lead from reported to assigned.')],
    problems: [NOT_FOUND],
    representations: 'json+xml',
    xmlRoot: 'drift',
  },
  {
    method: 'GET',
    path: '/groups',
    operationId: 'listGroups',
    summary: 'List groups with their host types and desired counts',
    tag: 'groups',
    action: listGroups,
    pathParameters: {},
    query: GroupListQuery,
    responses: [ok('GroupList', Responses.GroupList, 'One page of groups.')],
    problems: [],
    representations: 'json+xml',
    xmlRoot: 'groups',
  },
  {
    method: 'GET',
    path: '/groups/{name}',
    operationId: 'getGroup',
    summary: 'A group: definition, compiled group, running, active rollout',
    tag: 'groups',
    action: getGroup,
    pathParameters: groupName,
    query: NoQuery,
    responses: [{ ...ok('Group', Responses.GroupView, 'The group.'), headers: ['ETag'] }],
    problems: [NOT_FOUND],
    representations: 'json+xml',
    xmlRoot: 'group',
  },
  {
    method: 'PUT',
    path: '/groups/{name}',
    operationId: 'putGroup',
    summary: 'Define or replace a group (YAML or JSON)',
    tag: 'groups',
    action: putGroup,
    pathParameters: groupName,
    query: NoQuery,
    preconditions: ['If-Match', 'If-None-Match'],
    body: {
      name: 'GroupDefinition',
      schema: GroupDefinitionSchema,
      mediaTypes: ['application/json', ...YAML_TYPES],
      required: true,
      description: 'The group definition, as JSON or YAML.',
    },
    responses: [
      { ...ok('GroupDefined', Responses.GroupDefined, 'A new group.', 201), headers: ['ETag', 'Location'] },
      {
        ...ok('GroupDefined', Responses.GroupDefined, 'The group was updated or is unchanged.'),
        headers: ['ETag'],
      },
    ],
    problems: [CONFLICT, PRECONDITION_FAILED, TOO_LARGE, UNSUPPORTED_MEDIA_TYPE],
    representations: 'json+xml',
    xmlRoot: 'group',
  },
  {
    method: 'DELETE',
    path: '/groups/{name}',
    operationId: 'deleteGroup',
    summary: 'Delete a stopped group (its history is kept)',
    tag: 'groups',
    action: deleteGroup,
    pathParameters: groupName,
    query: NoQuery,
    preconditions: ['If-Match'],
    responses: [ok('GroupDeleted', Responses.GroupDeleted, 'The group is deleted.')],
    problems: [NOT_FOUND, CONFLICT, PRECONDITION_FAILED],
    representations: 'json+xml',
    xmlRoot: 'deleted',
  },
  ...(['start', 'stop'] as const).map(
    (verb): RouteSpec => ({
      method: 'POST',
      path: `/groups/{name}/${verb}`,
      operationId: `${verb}Group`,
      summary: `${verb === 'start' ? 'Start' : 'Stop'} a group (a named reconcile run; repeating names the same run)`,
      tag: 'groups',
      action: verb === 'start' ? startGroup : stopGroup,
      pathParameters: groupName,
      query: NoQuery,
      responses: [ok('GroupRun', Responses.GroupRun, 'The reconcile run took the request.', 202)],
      problems: [NOT_FOUND, CONFLICT],
      representations: 'json+xml',
      xmlRoot: 'groupRun',
    }),
  ),
  {
    method: 'GET',
    path: '/groups/{name}/history',
    operationId: 'groupHistory',
    summary: "A group's events (definitions, start/stop, rollouts, alarms), paged",
    tag: 'groups',
    action: groupHistory,
    pathParameters: groupName,
    query: HistoryQuery,
    responses: [ok('GroupHistory', Responses.GroupHistory, 'One page of the group stream.')],
    problems: [NOT_FOUND],
    representations: 'json+xml',
    xmlRoot: 'history',
  },
  {
    method: 'GET',
    path: '/groups/{name}/scaling',
    operationId: 'groupScaling',
    summary:
      "A group's autoscaling: per scaled host type its hosts, desired count, demand, forecast and decisions",
    tag: 'groups',
    action: groupScaling,
    pathParameters: groupName,
    query: NoQuery,
    responses: [
      ok('GroupScaling', Responses.GroupScaling, 'The scaled host types and the last 20 decisions.'),
    ],
    problems: [NOT_FOUND],
    representations: 'json',
  },
  {
    method: 'POST',
    path: '/groups/{name}/rollouts',
    operationId: 'requestRollout',
    summary: 'Roll a service out to a new version or config, through waves',
    tag: 'groups',
    action: requestRollout,
    pathParameters: groupName,
    query: NoQuery,
    body: {
      name: 'RolloutRequest',
      schema: RolloutBody,
      mediaTypes: ['application/json'],
      required: true,
      description: 'What to roll out and to which hosts (`select`, default `all`).',
    },
    responses: [rolloutAccepted('The rollout is accepted.')],
    problems: [NOT_FOUND, CONFLICT, TOO_LARGE],
    representations: 'json+xml',
    xmlRoot: 'rollout',
  },
  serviceCommand('DELETE', 'remove', removeService),
  serviceCommand('POST', 'stop', stopService),
  serviceCommand('POST', 'start', startService),
  {
    method: 'GET',
    path: '/rollouts/{id}',
    operationId: 'getRollout',
    summary: 'A rollout: status, waves, hosts done / pending / failed',
    tag: 'rollouts',
    action: getRollout,
    pathParameters: rolloutId,
    query: NoQuery,
    responses: [ok('Rollout', Responses.RolloutView, 'The rollout.')],
    problems: [NOT_FOUND],
    representations: 'json+xml',
    xmlRoot: 'rollout',
  },
  rolloutCommand('pause', pauseRollout, 'Pause a pending or running rollout'),
  rolloutCommand('resume', resumeRollout, 'Resume a paused rollout'),
  rolloutCommand('abort', abortRollout, 'Abort a rollout: the touched hosts are put back'),
  {
    method: 'POST',
    path: '/rollouts/{id}/revert',
    operationId: 'revertRollout',
    summary: 'Undo a succeeded rollout with a new one through the same waves',
    tag: 'rollouts',
    action: revertRollout,
    pathParameters: rolloutId,
    query: NoQuery,
    responses: [rolloutAccepted('The reverting rollout (`revertOf` names the original).')],
    problems: [NOT_FOUND, CONFLICT],
    representations: 'json+xml',
    xmlRoot: 'rollout',
  },
  {
    method: 'GET',
    path: '/alarms',
    operationId: 'listAlarms',
    summary: 'Alarms, newest first, with their diagnosis',
    tag: 'alarms',
    action: listAlarmsRoute,
    pathParameters: {},
    query: AlarmQuery,
    responses: [ok('AlarmList', Responses.AlarmList, 'One page of alarms.')],
    problems: [],
    representations: 'json+xml',
    xmlRoot: 'alarms',
  },
  {
    method: 'GET',
    path: '/cost',
    operationId: 'getCost',
    summary:
      "The system's own cost over the last hours (default 24) and that rate for a month, from its counters",
    tag: 'cost',
    action: getCost,
    pathParameters: {},
    query: CostQuery,
    responses: [ok('CostEstimate', Responses.CostEstimate, 'The estimate, line by line.')],
    problems: [],
    representations: 'json+xml',
    xmlRoot: 'cost',
  },
  {
    method: 'GET',
    path: '/openapi.json',
    operationId: 'getOpenApi',
    summary: 'This OpenAPI 3.1 document, generated from the route table',
    tag: 'documents',
    action: serveOpenApi,
    pathParameters: {},
    query: NoQuery,
    responses: [ok('OpenApiDocument', Responses.OpenApiDocument, 'The OpenAPI document.')],
    problems: [],
    representations: 'json',
  },
  {
    method: 'GET',
    path: '/schemas/snapshot.json',
    operationId: 'getSnapshotSchema',
    summary: 'The JSON Schema of the snapshot document a host posts',
    tag: 'documents',
    action: serveSnapshotSchema,
    pathParameters: {},
    query: NoQuery,
    responses: [ok('JsonSchemaDocument', Responses.JsonSchemaDocument, 'JSON Schema (draft 2020-12).')],
    problems: [],
    representations: 'json',
  },
];
