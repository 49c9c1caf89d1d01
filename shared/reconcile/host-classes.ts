/**
 * What the reconcile makes of the group's hosts: the host projections beside the fleet's instances. Pure.
 */
import type { FleetInstance } from '../groups/ports.ts';
import type { HostRecord } from '../ports.ts';

export interface HostClasses {
  /** Hosts with a live (not terminated) instance. */
  live: ReadonlySet<string>;
  /**
   * Hosts that are history: their instance is gone, seen now or recorded by an earlier run (after a restart
   * of local mode the fleet no longer knows it). Left out of the plan; their ids are never handed out again.
   */
  retired: ReadonlySet<string>;
  /** Instances that ended and whose end the host's stream does not record yet: record each once. */
  ended: { record: HostRecord; instance: FleetInstance; meantToStop: boolean }[];
  /** Hosts the planner sees: live, or not known to be gone. */
  current: HostRecord[];
}

export function classifyHosts(
  records: readonly HostRecord[],
  instances: readonly FleetInstance[],
): HostClasses {
  const live = new Set(instances.filter((i) => i.state !== 'terminated').map((i) => i.hostId));
  const gone = new Map(
    instances.filter((i) => i.state === 'terminated' && !live.has(i.hostId)).map((i) => [i.hostId, i]),
  );
  const retired = new Set(gone.keys());
  const ended: HostClasses['ended'] = [];
  for (const record of records) {
    const instance = gone.get(record.hostId);
    if (instance && record.terminated?.instanceId !== instance.instanceId)
      ended.push({ record, instance, meantToStop: record.assigned?.state.mode === 'stopped' });
    if (!live.has(record.hostId) && isTerminated(record)) retired.add(record.hostId);
  }
  const current = records.filter((record) => live.has(record.hostId) || !retired.has(record.hostId));
  return { live, retired, ended, current };
}

/** The stream's last word on the host is that its instance ended. */
export function isTerminated(record: HostRecord): boolean {
  return record.terminated !== undefined && record.terminated.afterSeq >= record.lastChangeSeq;
}
