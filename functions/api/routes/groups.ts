import * as z from 'zod/mini';
import { FleetfoldError, NotFoundError } from '../../../shared/errors.ts';
import { withEffectiveRules } from '../../../shared/groups/compile.ts';
import { groupStream } from '../../../shared/groups/events.ts';
import { checkGroupName, type DefinitionFormat } from '../../../shared/groups/group-service.ts';
import type { GroupDocument } from '../../../shared/groups/group-state.ts';
import type { Rollout } from '../../../shared/groups/model.ts';
import type { StoredDocument } from '../../../shared/groups/ports.ts';
import { ConfigKey, Name, Version } from '../../../shared/schemas.ts';
import type { ApiDeps } from '../deps.ts';
import { atTheEdge, groupLinks, groupService, rolloutLinks, rolloutView } from '../group-resources.ts';
import {
  type ApiRequest,
  type ApiResponse,
  bodyText,
  intParam,
  mediaType,
  parseBody,
  parseJsonBody,
  parseQuery,
} from '../http.ts';
import { definitionPreconditions, etagOf } from '../preconditions.ts';
import { Cursor, historyQuery, readHistory } from './history.ts';

const DEFAULT_LIST_LIMIT = 50;

export const YAML_TYPES = new Set(['application/yaml', 'application/x-yaml', 'text/yaml', 'text/x-yaml']);

/**
 * A group as the API shows it: the definition as accepted, what it compiled to (with the effective rules, the
 * defaults first, also for documents stored before rules were compiled), and where it stands.
 */
export function groupView(name: string, group: GroupDocument) {
  return {
    name,
    definitionVersion: group.definitionVersion,
    running: group.running,
    ...(group.activeRollout ? { activeRollout: group.activeRollout.id } : {}),
    // Changes a definition declared that wait for the active rollout to end, next first.
    ...(group.declaredQueue && group.declaredQueue.length > 0 ? { declaredQueue: group.declaredQueue } : {}),
    definition: group.definition,
    compiled: withEffectiveRules(group.compiled, group.definition),
    links: groupLinks(name),
  };
}

function groupSummary(document: StoredDocument<GroupDocument>) {
  const group = document.body;
  return {
    name: document.id,
    definitionVersion: group.definitionVersion,
    running: group.running,
    ...(group.activeRollout ? { activeRollout: group.activeRollout.id } : {}),
    hostTypes: Object.values(group.compiled.hostTypes)
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .map((hostType) => ({ name: hostType.name, desired: hostType.desired })),
    updatedAt: document.updatedAt,
  };
}

export const ListQuery = z.strictObject({ limit: z.optional(intParam(1, 100)), next: z.optional(Cursor) });

export async function listGroups(deps: ApiDeps, request: ApiRequest): Promise<ApiResponse> {
  const { limit, next } = parseQuery(ListQuery, request.query);
  const page = await groupService(deps).listGroups(limit ?? DEFAULT_LIST_LIMIT, next);
  return {
    status: 200,
    xmlRoot: 'groups',
    body: { groups: page.documents.map(groupSummary), next: page.next },
  };
}

function definitionFormat(request: ApiRequest): DefinitionFormat {
  const type = mediaType(request);
  if (type === undefined || type === 'application/json' || type.endsWith('+json')) return 'json';
  if (YAML_TYPES.has(type)) return 'yaml';
  throw new FleetfoldError(
    'validation',
    415,
    `a group definition is YAML (application/yaml, text/yaml, application/x-yaml) or JSON (application/json), not ${type}`,
    { header: 'content-type', contentType: type },
  );
}

export async function putGroup(deps: ApiDeps, request: ApiRequest, name: string): Promise<ApiResponse> {
  parseQuery(z.strictObject({}), request.query);
  const format = definitionFormat(request);
  const text = bodyText(request);
  const outcome = await atTheEdge(request, () =>
    groupService(deps).defineGroup(name, text, format, definitionPreconditions(request)),
  );
  return {
    status: outcome.outcome === 'created' ? 201 : 200,
    xmlRoot: 'group',
    headers: {
      ETag: etagOf(outcome.group.definitionVersion),
      ...(outcome.outcome === 'created' ? { Location: `/groups/${name}` } : {}),
    },
    body: {
      outcome: outcome.outcome,
      ...groupView(name, outcome.group),
      ...(outcome.executionId !== undefined ? { executionId: outcome.executionId } : {}),
      // The change of a running group's hosts rolls out: where to watch it.
      ...(outcome.rollout
        ? { rollout: { id: outcome.rollout.id, links: rolloutLinks(outcome.rollout.id, name) } }
        : {}),
    },
  };
}

export async function getGroup(deps: ApiDeps, request: ApiRequest, name: string): Promise<ApiResponse> {
  parseQuery(z.strictObject({}), request.query);
  const document = await atTheEdge(request, () => groupService(deps).getGroup(name));
  return {
    status: 200,
    xmlRoot: 'group',
    headers: { ETag: etagOf(document.body.definitionVersion) },
    body: groupView(name, document.body),
  };
}

export async function deleteGroup(deps: ApiDeps, request: ApiRequest, name: string): Promise<ApiResponse> {
  parseQuery(z.strictObject({}), request.query);
  await atTheEdge(request, () => groupService(deps).deleteGroup(name, definitionPreconditions(request)));
  return { status: 200, xmlRoot: 'deleted', body: { group: name, deleted: true } };
}

async function runResponse(
  request: ApiRequest,
  run: () => Promise<{ group: string; running: boolean; executionId: string }>,
) {
  const { group, running, executionId } = await atTheEdge(request, run);
  return {
    status: 202,
    xmlRoot: 'groupRun',
    body: { group, running, executionId, links: groupLinks(group) },
  };
}

export async function startGroup(deps: ApiDeps, request: ApiRequest, name: string): Promise<ApiResponse> {
  parseQuery(z.strictObject({}), request.query);
  return runResponse(request, () => groupService(deps).startGroup(name));
}

export async function stopGroup(deps: ApiDeps, request: ApiRequest, name: string): Promise<ApiResponse> {
  parseQuery(z.strictObject({}), request.query);
  return runResponse(request, () => groupService(deps).stopGroup(name));
}

/** The group's stream, deleted incarnations included: history outlives the group document. */
export async function groupHistory(deps: ApiDeps, request: ApiRequest, name: string): Promise<ApiResponse> {
  const query = historyQuery(request);
  checkGroupName(name);
  const stream = groupStream(name);
  const page = await readHistory(deps, stream, query);
  if (
    page.events.length === 0 &&
    query.next === undefined &&
    (await deps.events.currentVersion(stream)) === 0
  ) {
    throw new NotFoundError(`group "${name}" has no history`, { group: name });
  }
  return { status: 200, xmlRoot: 'history', body: { group: name, events: page.events, next: page.next } };
}

export const RolloutBody = z.strictObject({
  service: Name,
  version: z.optional(Version),
  config: z.optional(z.record(ConfigKey, z.string().check(z.maxLength(4096)))),
  select: z.optional(z.string().check(z.minLength(1), z.maxLength(256))),
});

export const ServiceOperationBody = z.strictObject({
  select: z.optional(z.string().check(z.minLength(1), z.maxLength(256))),
});

/** The body is optional: without one the operation selects every host running the service. */
function serviceOperationBody(request: ApiRequest): z.infer<typeof ServiceOperationBody> {
  if (bodyText(request).trim() === '') return {};
  return parseBody(ServiceOperationBody, parseJsonBody(request));
}

function serviceOperation(operation: 'stop' | 'start' | 'remove') {
  return async (deps: ApiDeps, request: ApiRequest, name: string, service: string): Promise<ApiResponse> => {
    parseQuery(z.strictObject({}), request.query);
    const { select } = serviceOperationBody(request);
    const { rollout, executionId } = await atTheEdge(request, () =>
      groupService(deps).serviceOperation(name, service, operation, select),
    );
    return rolloutAccepted(rollout, executionId);
  };
}

/** POST /groups/{name}/services/{service}/stop: a rollout that stops the service on the selected hosts. */
export const stopService = serviceOperation('stop');
/** POST /groups/{name}/services/{service}/start */
export const startService = serviceOperation('start');
/** DELETE /groups/{name}/services/{service}: removed from the hosts, then from the definition. */
export const removeService = serviceOperation('remove');

function rolloutAccepted(rollout: Rollout, executionId: string | undefined): ApiResponse {
  return {
    status: 202,
    xmlRoot: 'rollout',
    headers: { Location: `/rollouts/${rollout.id}` },
    body: { ...rolloutView(rollout), ...(executionId !== undefined ? { executionId } : {}) },
  };
}

export async function requestRollout(deps: ApiDeps, request: ApiRequest, name: string): Promise<ApiResponse> {
  parseQuery(z.strictObject({}), request.query);
  const body = parseBody(RolloutBody, parseJsonBody(request));
  const { rollout, executionId } = await atTheEdge(request, () =>
    groupService(deps).requestRollout(name, body),
  );
  return rolloutAccepted(rollout, executionId);
}
