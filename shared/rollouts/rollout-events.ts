/**
 * Events of a rollout's own stream (`rollout#<id>`): what was asked, how the reconcile planned and moved it,
 * what operators did to it, and how it ended. The 'rollout' document is their fold; the group's stream
 * mirrors each change of status (RolloutStatusChanged) so the group knows whether a rollout still holds it.
 */
import type { RolloutRequested } from '../groups/events.ts';

/** The stream begins: the request as the group's stream recorded it. */
export interface RolloutCreated {
  type: 'RolloutCreated';
  data: { group: string; request: RolloutRequested['data'] };
}

/** An operator paused it: the reconcile holds before the next wave. */
export interface RolloutPaused {
  type: 'RolloutPaused';
  data: { at: string };
}

export interface RolloutResumed {
  type: 'RolloutResumed';
  data: { at: string };
}

/**
 * A reconcile pass planned it: the waves it will go through and every host it is to reach — the waves' hosts and
 * `alsoTargets` (held back for now). Each host is named once: a rollout over 10,000 hosts must stay one event.
 * Events from before `alsoTargets` carry all of them in `targets`.
 */
export interface RolloutPlanned {
  type: 'RolloutPlanned';
  data: {
    run: string;
    waves: { index: number; hosts: string[] }[];
    alsoTargets?: string[];
    targets?: string[];
    at: string;
  };
}

/** Every host a plan is to reach. */
export function plannedTargets(data: RolloutPlanned['data']): string[] {
  if (data.targets) return data.targets;
  return [...new Set([...data.waves.flatMap((wave) => wave.hosts), ...(data.alsoTargets ?? [])])];
}

export interface RolloutWaveStarted {
  type: 'RolloutWaveStarted';
  data: { index: number; at: string };
}

/** A wave ended: `done` are the hosts that report the target, `failed` those that did not make it. */
export interface RolloutWaveSettled {
  type: 'RolloutWaveSettled';
  data: { index: number; done: string[]; failed: string[]; at: string };
}

export interface RolloutSucceeded {
  type: 'RolloutSucceeded';
  data: { at: string };
}

/** The hosts it touched are being put back: an operator aborted it, or a wave failed. */
export interface RolloutRevertStarted {
  type: 'RolloutRevertStarted';
  data: { outcome: 'aborted' | 'rolled-back'; reason: string; at: string };
}

/** The revert converged: the rollout ends as what the revert was for. */
export interface RolloutRevertFinished {
  type: 'RolloutRevertFinished';
  data: { outcome: 'aborted' | 'rolled-back'; at: string };
}

/** It ended without converging and without a revert that did (e.g. the revert itself failed). */
export interface RolloutFailed {
  type: 'RolloutFailed';
  data: { reason: string; at: string };
}

export type RolloutEvent =
  | RolloutCreated
  | RolloutPaused
  | RolloutResumed
  | RolloutPlanned
  | RolloutWaveStarted
  | RolloutWaveSettled
  | RolloutSucceeded
  | RolloutRevertStarted
  | RolloutRevertFinished
  | RolloutFailed;

export function rolloutStream(rolloutId: string): string {
  return `rollout#${rolloutId}`;
}
