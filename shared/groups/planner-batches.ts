/**
 * Disruptive work (scale-in, rollout, stop) goes in batches. A batch is out of service together: taken out of
 * its load balancers and drained, waited for, altered, and only then does the next batch start, so the hosts
 * out at any moment are one batch plus those that were out before the plan.
 */
import type { DrainPolicy } from './model.ts';
import type { LoadBalancers } from './planner-load-balancers.ts';
import type { Slot } from './planner-projection.ts';
import type { PlanWriter, WaveWriter } from './planner-waves.ts';

export interface Job {
  slot: Slot;
  /** Live sessions: drain it (and wait for them to end, per policy) before acting. */
  drain: boolean;
  act: (wave: WaveWriter, slot: Slot) => void;
}

export function runBatch(
  plan: PlanWriter,
  balancers: LoadBalancers,
  policy: DrainPolicy,
  jobs: readonly Job[],
  /** Extra actions for the batch's first wave (e.g. telling dependents that a service changes). */
  prepare?: (wave: WaveWriter) => void,
): void {
  if (jobs.length === 0) return;
  const disrupted = jobs.map((job) => job.slot.hostId);
  for (const job of jobs) {
    job.slot.out = true;
    balancers.touched(job.slot);
  }
  const drained = jobs.filter((job) => job.drain);
  plan.wave((wave) => {
    prepare?.(wave);
    for (const job of drained) wave.drain(job.slot);
    wave.disrupted = disrupted;
  });
  if (drained.length > 0 && policy.waitForSessions) {
    plan.wave((wave) => {
      for (const job of drained) wave.awaitDrained(job.slot);
      wave.disrupted = disrupted;
    });
  }
  plan.wave((wave) => {
    for (const job of jobs) job.act(wave, job.slot);
    wave.disrupted = disrupted;
  });
  for (const job of jobs) {
    if (job.slot.gone) continue;
    job.slot.out = false;
    if (job.slot.state.mode === 'running') job.slot.status = 'running';
    balancers.touched(job.slot);
  }
}

export interface BatchLimits {
  /** Hosts per batch (the rollout's wave size). */
  size: number;
  /** Hosts in service a batch may take out: what the disruption budget leaves. */
  fresh: number;
  /** Keeps hosts apart that must not be altered together (different dependency levels). */
  together?: (a: Slot, b: Slot) => boolean;
}

/**
 * Cuts jobs, in order, into batches within the limits. Hosts already out of service cost no budget; with no
 * budget left, the others come back as `overBudget`.
 */
export function intoBatches(
  jobs: readonly Job[],
  limits: BatchLimits,
): { batches: Job[][]; overBudget: Job[] } {
  const batches: Job[][] = [];
  const overBudget: Job[] = [];
  let batch: Job[] = [];
  let fresh = 0;
  for (const job of jobs) {
    const costs = !job.slot.outAtStart;
    if (costs && limits.fresh <= 0) {
      overBudget.push(job);
      continue;
    }
    const first = batch[0];
    const full =
      batch.length >= limits.size ||
      (costs && fresh >= limits.fresh) ||
      (first !== undefined && limits.together !== undefined && !limits.together(first.slot, job.slot));
    if (full && batch.length > 0) {
      batches.push(batch);
      batch = [];
      fresh = 0;
    }
    batch.push(job);
    if (costs) fresh += 1;
  }
  if (batch.length > 0) batches.push(batch);
  return { batches, overBudget };
}
