import type { ReconcileStarter } from '../../shared/groups/ports.ts';
import type { InstanceExit, LocalInstance } from './local-fleet.ts';

export interface CrashTriggerOptions {
  /** Late-bound: the fleet is built before the reconcile starter that needs it. */
  reconcile: () => ReconcileStarter;
  /** How often the host was launched: one crash of one launch starts one run, however often it is told. */
  launchCount: (hostId: string) => number;
  /** True once the control plane shuts down: agents dying with it are not crashes to repair. */
  stopping: () => boolean;
  onError?: (error: unknown, instance: LocalInstance) => void;
}

/**
 * An agent that ends without being asked is a crashed instance: its group is reconciled, and the Plan step
 * records the host failed and launches its replacement, as an EC2 instance-state-change rule would on AWS.
 */
export function reconcileOnCrash(options: CrashTriggerOptions) {
  return (instance: LocalInstance, exit: InstanceExit): Promise<void> => {
    if (exit.requested || options.stopping()) return Promise.resolve();
    const { hostId, group } = instance.spec;
    return options
      .reconcile()
      .start({
        group,
        reason: 'host-exited',
        dedupeKey: `host-${hostId}-exit-${options.launchCount(hostId)}`,
      })
      .then(
        () => undefined,
        (error: unknown) => options.onError?.(error, instance),
      );
  };
}
