import type { DesiredHostState } from '../../shared/groups/model.ts';

/** Makes the host run what a desired state says; converging, so applying the same state twice is harmless. */
export interface StateApplier {
  apply(state: DesiredHostState): Promise<void>;
  /** Stops whatever the applier started (local mode's processes); nothing is left running after it. */
  stop(): Promise<void>;
}
