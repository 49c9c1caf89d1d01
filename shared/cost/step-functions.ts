/**
 * The states one reconcile run enters, in order, as infra/constructs/reconcile-state-machine.ts builds them:
 * Step Functions Standard bills every state entered (a Map state and each state of each iteration included).
 * The names are the construct's RECONCILE_STATES (a test walks this path over the synthesized definition, so
 * a changed machine fails it rather than quietly changing the bill).
 */
export interface RunShape {
  /** Waves per pass (a rollout's waves; 1 for an ordinary reconcile). */
  waves: number;
  /** Check steps per wave: the first comes right after Apply, each further one after a Wait. At least 1. */
  checksPerWave: number;
  /** Passes through Plan: 1, plus one per follow-up Finish asks for. At least 1. */
  passes: number;
}

export function reconcilePath(shape: RunShape): string[] {
  const checks = Math.max(1, Math.round(shape.checksPerWave));
  const passes = Math.max(1, Math.round(shape.passes));
  const path: string[] = [];
  for (let pass = 0; pass < passes; pass += 1) {
    path.push('Plan', 'Held?', 'Waves');
    for (let wave = 0; wave < Math.round(shape.waves); wave += 1) {
      path.push('Apply', 'Check', 'Converged?');
      for (let check = 1; check < checks; check += 1) path.push('Wait', 'Check', 'Converged?');
      path.push('WaveDone');
    }
    path.push('Finish', 'FollowUp?');
    path.push(...(pass + 1 < passes ? ['PassWait', 'NextPass'] : ['Done']));
  }
  return path;
}

/** State transitions billed for one run of the given shape. */
export function transitionsPerRun(shape: RunShape): number {
  return reconcilePath(shape).length;
}

/** The reconcile function's invocations in one run: Plan and Finish per pass, Apply and each Check per wave. */
export function invocationsPerRun(shape: RunShape): number {
  return reconcilePath(shape).filter((state) => TASK_STATES.has(state)).length;
}

const TASK_STATES: ReadonlySet<string> = new Set(['Plan', 'Apply', 'Check', 'Finish', 'Rollback']);

/**
 * Transitions of the runs behind counted reconcile invocations (GET /cost): each invocation names its step,
 * and each step brings a fixed number of states with it on the path above (Plan: Plan, Held?, Waves; Apply:
 * Apply; Check: Check, Converged? and then Wait or WaveDone; Finish: Finish, FollowUp? and Done, or PassWait
 * and NextPass, counted as 3; Rollback: Rollback, Reverting?).
 */
export const TRANSITIONS_PER_STEP: Readonly<Record<string, number>> = {
  plan: 3,
  apply: 1,
  check: 3,
  finish: 3,
  rollback: 2,
};
