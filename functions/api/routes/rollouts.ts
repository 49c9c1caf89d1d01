import * as z from 'zod/mini';
import type { Rollout } from '../../../shared/groups/model.ts';
import type { RolloutCommand } from '../../../shared/groups/rollout-status.ts';
import type { ApiDeps } from '../deps.ts';
import { type ApiRequest, type ApiResponse, parseQuery } from '../http.ts';
import { groupService } from './groups.ts';

/** A rollout with the links an operator (or the CLI) follows to watch and steer it. */
export function rolloutView(rollout: Rollout) {
  const self = `/rollouts/${rollout.id}`;
  return {
    ...rollout,
    links: {
      self,
      group: `/groups/${rollout.group}`,
      pause: `${self}/pause`,
      resume: `${self}/resume`,
      abort: `${self}/abort`,
    },
  };
}

export async function getRollout(deps: ApiDeps, request: ApiRequest, id: string): Promise<ApiResponse> {
  parseQuery(z.strictObject({}), request.query);
  const document = await groupService(deps).getRollout(id);
  return { status: 200, xmlRoot: 'rollout', body: rolloutView(document.body) };
}

function command(name: RolloutCommand) {
  return async (deps: ApiDeps, request: ApiRequest, id: string): Promise<ApiResponse> => {
    parseQuery(z.strictObject({}), request.query);
    const { rollout, executionId } = await groupService(deps).commandRollout(id, name);
    return {
      // A resume hands the rollout back to the reconcile loop (the run waiting at its check, or a new one when
      // that run is over, then with its executionId): accepted, not done.
      status: name === 'resume' ? 202 : 200,
      xmlRoot: 'rollout',
      body: { ...rolloutView(rollout), ...(executionId !== undefined ? { executionId } : {}) },
    };
  };
}

export const pauseRollout = command('pause');
export const resumeRollout = command('resume');
export const abortRollout = command('abort');
