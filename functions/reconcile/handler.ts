import { ValidationError } from '../../shared/errors.ts';
import { applyStep } from './steps/apply.ts';
import { checkStep } from './steps/check.ts';
import { finishStep } from './steps/finish.ts';
import { planStep } from './steps/plan.ts';
import { rollbackStep } from './steps/rollback.ts';
import type { ReconcileDeps, ReconcileEvent } from './steps/types.ts';

export type { PlanRef, ReconcileDeps, ReconcileEvent, ReconcileSettings } from './steps/types.ts';

/**
 * One function for every step of the reconcile state machine, told apart by `step`: one bundle, and the
 * warm instance of one step serves the next.
 */
export function createReconcileHandler(deps: ReconcileDeps) {
  return async (event: ReconcileEvent): Promise<unknown> => {
    switch (event.step) {
      case 'plan':
        return planStep(deps, event.request, event.executionName, event.executionStart);
      case 'apply':
        return applyStep(deps, event.plan, event.wave);
      case 'check':
        return checkStep(deps, event.plan, event.wave, event.deadline);
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
