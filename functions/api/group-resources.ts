/**
 * Groups and rollouts as resources: the service the routes call, the links a client follows, and how the
 * domain's refusals reach the client (a stale precondition as 412, a refusal with the link out of it).
 * URLs live here, at the edge; the domain names groups and rollouts only by their ids.
 */
import { FleetfoldError, StaleVersionError } from '../../shared/errors.ts';
import { GroupService } from '../../shared/groups/group-service.ts';
import type { Rollout, RolloutStatus } from '../../shared/groups/model.ts';
import type { ApiDeps } from './deps.ts';
import type { ApiRequest } from './http.ts';
import { preconditionFailed } from './preconditions.ts';

export function groupService(deps: ApiDeps): GroupService {
  return new GroupService(deps);
}

export function groupLinks(name: string) {
  return {
    self: `/groups/${name}`,
    services: `/groups/${name}/services`,
    start: `/groups/${name}/start`,
    stop: `/groups/${name}/stop`,
    rollouts: `/groups/${name}/rollouts`,
    history: `/groups/${name}/history`,
  };
}

export function rolloutLinks(id: string, group: string) {
  const self = `/rollouts/${id}`;
  return {
    self,
    group: `/groups/${group}`,
    pause: `${self}/pause`,
    resume: `${self}/resume`,
    abort: `${self}/abort`,
    revert: `${self}/revert`,
  };
}

/** A rollout with the links an operator (or the CLI) follows to watch and steer it. */
export function rolloutView(rollout: Rollout) {
  return { ...rollout, links: rolloutLinks(rollout.id, rollout.group) };
}

const ABORTABLE: ReadonlySet<RolloutStatus> = new Set(['pending', 'running', 'paused']);

/** The way out of a refusal, as links for the problem document and the request that takes it. */
function wayOut(
  details: Record<string, unknown>,
): { links: Record<string, string>; hint: string } | undefined {
  const group = typeof details.group === 'string' ? details.group : undefined;
  const rolloutId = typeof details.rolloutId === 'string' ? details.rolloutId : undefined;
  switch (details.reason) {
    case 'group-running':
      if (!group) return undefined;
      return { links: { stop: groupLinks(group).stop }, hint: `POST ${groupLinks(group).stop}` };
    case 'group-not-running':
      if (!group) return undefined;
      return { links: { start: groupLinks(group).start }, hint: `POST ${groupLinks(group).start}` };
    case 'rollout-active': {
      if (!rolloutId) return undefined;
      const links = rolloutLinks(rolloutId, group ?? '');
      return ABORTABLE.has(details.rolloutStatus as RolloutStatus)
        ? { links: { rollout: links.self, abort: links.abort }, hint: `POST ${links.abort}` }
        : { links: { rollout: links.self }, hint: `GET ${links.self}` };
    }
    default:
      return undefined;
  }
}

/** The domain error as the client is to see it. */
export function forTheClient(request: ApiRequest, error: unknown): unknown {
  if (error instanceof StaleVersionError) return preconditionFailed(request, error);
  if (!(error instanceof FleetfoldError)) return error;
  const out = wayOut(error.details);
  if (!out) return error;
  return new FleetfoldError(
    error.code,
    error.status,
    `${error.message} (${out.hint})`,
    { ...error.details, ...out.links },
    { cause: error },
  );
}

/** Runs a route's domain call, handing its refusals to the client in HTTP's terms. */
export async function atTheEdge<T>(request: ApiRequest, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw forTheClient(request, error);
  }
}
