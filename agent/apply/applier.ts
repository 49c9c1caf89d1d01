import type { DesiredHostState, ServiceSpec } from '../../shared/groups/model.ts';

/** Makes the host run what a desired state says; converging, so applying the same state twice is harmless. */
export interface StateApplier {
  apply(state: DesiredHostState): Promise<void>;
  /** Stops whatever the applier started (local mode's processes); nothing is left running after it. */
  stop(): Promise<void>;
}

/** A service stopped on purpose (`stopped: true`) stays in the state but is not run: it stops like one removed. */
export function runningServices(services: Record<string, ServiceSpec>): Record<string, ServiceSpec> {
  return Object.fromEntries(Object.entries(services).filter(([, spec]) => spec.stopped !== true));
}
