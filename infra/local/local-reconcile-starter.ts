import { executionNameFor } from '../../shared/adapters/sfn-reconcile-starter.ts';
import type { ReconcileStarter } from '../../shared/groups/ports.ts';
import { reconcileAsl } from './reconcile-asl.ts';
import { type LocalFunction, type LocalRunOptions, LocalStateMachine } from './step-functions.ts';

export interface LocalReconcileStarterOptions {
  machine: LocalStateMachine;
  /** Shown in execution ids, as the state machine's name is in an execution ARN. */
  stateMachineName?: string;
  waitMs?: LocalRunOptions['waitMs'];
  retryMs?: LocalRunOptions['retryMs'];
  /** Told how each run ended; a failed run is an outcome, not an error of the starter. */
  onSettled?: (outcome: LocalOutcome) => void;
}

export type LocalOutcome =
  | { executionId: string; name: string; status: 'SUCCEEDED'; output: unknown }
  | { executionId: string; name: string; status: 'FAILED'; error: string; cause: string };

interface Run {
  executionId: string;
  settled: Promise<LocalOutcome>;
  abort(): void;
}

/**
 * Local mode's Step Functions: runs reconcile executions in this process. Like StartExecution with a name,
 * a name that is running or has run is not started again; its existing execution is returned.
 */
export class LocalReconcileStarter implements ReconcileStarter {
  readonly #runs = new Map<string, Run>();
  readonly #options: LocalReconcileStarterOptions;

  constructor(options: LocalReconcileStarterOptions) {
    this.#options = options;
  }

  async start(request: { group: string; reason: string; rolloutId?: string; dedupeKey: string }) {
    const name = executionNameFor(request.dedupeKey);
    const existing = this.#runs.get(name);
    if (existing) return { executionId: existing.executionId };

    const executionId = `arn:aws:states:local:000000000000:execution:${this.#options.stateMachineName ?? 'fleetfold-reconcile'}:${name}`;
    const input = {
      group: request.group,
      reason: request.reason,
      ...(request.rolloutId === undefined ? {} : { rolloutId: request.rolloutId }),
    };
    const execution = this.#options.machine.run(input, {
      name,
      ...(this.#options.waitMs === undefined ? {} : { waitMs: this.#options.waitMs }),
      ...(this.#options.retryMs === undefined ? {} : { retryMs: this.#options.retryMs }),
    });
    const settled = execution.result.then(
      (output): LocalOutcome => ({ executionId, name, status: 'SUCCEEDED', output }),
      (error: unknown): LocalOutcome => ({ executionId, name, status: 'FAILED', ...failureOf(error) }),
    );
    settled.then((outcome) => this.#options.onSettled?.(outcome));
    this.#runs.set(name, { executionId, settled, abort: execution.abort });
    return { executionId };
  }

  /** How the execution ended (waits for it); undefined for an id this starter never returned. */
  async outcome(executionId: string): Promise<LocalOutcome | undefined> {
    for (const run of this.#runs.values()) if (run.executionId === executionId) return run.settled;
    return undefined;
  }

  /** Waits for every run started so far, e.g. before shutting local mode down. */
  async settled(): Promise<LocalOutcome[]> {
    return Promise.all([...this.#runs.values()].map((run) => run.settled));
  }

  /** Stops every run still going (local mode's shutdown). */
  stop(): void {
    for (const run of this.#runs.values()) run.abort();
  }
}

/** aws-local-stepfunctions wraps the failing state's error (name = ASL error, message = cause) as `cause`. */
function failureOf(error: unknown): { error: string; cause: string } {
  const inner = error instanceof Error && error.cause instanceof Error ? error.cause : error;
  if (inner instanceof Error) return { error: inner.name, cause: inner.message };
  return { error: 'Error', cause: String(inner) };
}

/**
 * Local mode's wiring in one call: the reconcile state machine CDK synthesizes, its tasks calling `handler`
 * (createReconcileHandler(deps)) in this process.
 */
export function localReconcileStarter(
  handler: LocalFunction,
  options: Omit<LocalReconcileStarterOptions, 'machine'> = {},
): LocalReconcileStarter {
  return new LocalReconcileStarter({ ...options, machine: new LocalStateMachine(reconcileAsl(), handler) });
}
