import { countUsage, reconcileStepCounts, type UsageCounter } from '../../shared/cost/usage.ts';
import { ValidationError } from '../../shared/errors.ts';
import { METRICS } from '../../shared/telemetry.ts';
import { applyStep } from './steps/apply.ts';
import { checkStep } from './steps/check.ts';
import { finishStep } from './steps/finish.ts';
import { planStep } from './steps/plan.ts';
import { rollbackStep } from './steps/rollback.ts';
import type { CheckResult, PlanRef, ReconcileDeps, ReconcileEvent } from './steps/types.ts';

export type { PlanRef, ReconcileDeps, ReconcileEvent, ReconcileSettings } from './steps/types.ts';

/**
 * One function for every step of the reconcile state machine, told apart by `step`: one bundle, and the
 * warm instance of one step serves the next.
 */
export function createReconcileHandler(deps: ReconcileDeps & { usage?: UsageCounter }) {
  const run = stepRunner(deps);
  return async (event: ReconcileEvent): Promise<unknown> => {
    const startedMs = Date.now();
    try {
      return await run(event);
    } finally {
      await countUsage(deps.usage, deps.now(), reconcileStepCounts(event.step, Date.now() - startedMs));
    }
  };
}

function stepRunner(deps: ReconcileDeps) {
  return async (event: ReconcileEvent): Promise<unknown> => {
    switch (event.step) {
      case 'plan':
        return planStep(deps, event.request, event.executionName, event.executionStart);
      case 'apply':
        return applyStep(deps, event.plan, event.wave);
      case 'check': {
        const result = await checkStep(deps, event.plan, event.wave, event.deadline);
        const took = waveDurationMs(event.plan, result, deps.now());
        if (took !== undefined) deps.telemetry?.milliseconds(METRICS.waveDuration, took);
        return result;
      }
      case 'rollback':
        return rollbackStep(deps, event.plan, event.failure);
      case 'finish':
        return finishStep(deps, event.plan);
      default:
        throw new ValidationError(
          `unknown reconcile step ${JSON.stringify((event as { step?: unknown }).step)}`,
        );
    }
  };
}

/**
 * How long a wave took from its apply to the check that settled it (converged, failed, timed out); undefined
 * while it is still waiting. The apply is deadlineSeconds before the deadline (a pause pushes both on, so a
 * pause is not counted).
 */
export function waveDurationMs(
  plan: Pick<PlanRef, 'deadlineSeconds'>,
  result: Pick<CheckResult, 'status' | 'deadline'>,
  now: Date,
): number | undefined {
  if (result.status === 'waiting') return undefined;
  const appliedAt = Date.parse(result.deadline) - plan.deadlineSeconds * 1000;
  return Number.isFinite(appliedAt) ? Math.max(0, now.getTime() - appliedAt) : undefined;
}

/** The execution and group a step works for: every log line of the invocation carries them. */
export function runKeys(event: ReconcileEvent): Record<string, string | undefined> {
  if (event.step === 'plan') return { execution: event.executionName, group: event.request?.group };
  return {
    execution: event.plan?.run,
    group: event.plan?.group,
    rolloutId: event.plan?.rolloutId ?? undefined,
  };
}
