import * as z from 'zod/mini';
import type { OperatorVerb } from '../../../shared/rollouts/rollout-decider.ts';
import type { ApiDeps } from '../deps.ts';
import { atTheEdge, groupService, rolloutView } from '../group-resources.ts';
import { type ApiRequest, type ApiResponse, parseQuery } from '../http.ts';

export async function getRollout(deps: ApiDeps, request: ApiRequest, id: string): Promise<ApiResponse> {
  parseQuery(z.strictObject({}), request.query);
  const rollout = await atTheEdge(request, () => groupService(deps).getRollout(id));
  return { status: 200, xmlRoot: 'rollout', body: rolloutView(rollout) };
}

function command(verb: OperatorVerb) {
  return async (deps: ApiDeps, request: ApiRequest, id: string): Promise<ApiResponse> => {
    parseQuery(z.strictObject({}), request.query);
    const { rollout, executionId } = await atTheEdge(request, () =>
      groupService(deps).commandRollout(id, verb),
    );
    return {
      // Resume and abort hand the rollout to the reconcile loop (a run that holds the group takes the request
      // in, else a new one starts, named in executionId): accepted, not done. A pause is done when recorded.
      status: verb === 'pause' ? 200 : 202,
      xmlRoot: 'rollout',
      body: { ...rolloutView(rollout), ...(executionId !== undefined ? { executionId } : {}) },
    };
  };
}

/**
 * POST /rollouts/{id}/revert: a succeeded rollout is undone by a new rollout (revertOf names it) through the
 * same waves, budget and drain; 409 for one still active (abort it instead) or one that did not succeed.
 */
export async function revertRollout(deps: ApiDeps, request: ApiRequest, id: string): Promise<ApiResponse> {
  parseQuery(z.strictObject({}), request.query);
  const { rollout, executionId } = await atTheEdge(request, () => groupService(deps).revertRollout(id));
  return {
    status: 202,
    xmlRoot: 'rollout',
    headers: { Location: `/rollouts/${rollout.id}` },
    body: { ...rolloutView(rollout), ...(executionId !== undefined ? { executionId } : {}) },
  };
}

export const pauseRollout = command('pause');
export const resumeRollout = command('resume');
export const abortRollout = command('abort');
