/**
 * Whether a host is where a rollout (or its revert) wants it, judged only by what the host reported: a rollout
 * is done when the hosts say so, never when the message was sent. Pure.
 */
import type { ServiceSpec } from '../groups/model.ts';
import type { HostRecord } from '../ports.ts';

export interface ServiceTarget {
  service: string;
  version?: string;
  /** Keys that must have these values in the service's config. */
  config?: Record<string, string>;
  /** Stopped on purpose (true), or running (false); unset: either. */
  stopped?: boolean;
  /** The service is gone from the host (a `remove` rollout). */
  absent?: true;
}

export function specMatches(spec: ServiceSpec | undefined, target: ServiceTarget): boolean {
  if (!spec) return false;
  if (target.stopped !== undefined && (spec.stopped === true) !== target.stopped) return false;
  if (target.version !== undefined && spec.version !== target.version) return false;
  return Object.entries(target.config ?? {}).every(([key, value]) => spec.config?.[key] === value);
}

/**
 * The host runs the target: it was assigned a running state whose spec of the service matches, it reports
 * having applied that state (config reaches a host only inside a state), it reports the version running, and
 * it is up and serving.
 */
export function reportsTarget(record: HostRecord | undefined, target: ServiceTarget): boolean {
  const assigned = record?.assigned?.state;
  if (!record || !assigned || assigned.mode !== 'running') return false;
  const spec = assigned.services[target.service];
  const observed = record.observed;
  if (target.absent) {
    if (spec !== undefined || (observed?.appliedStateVersion ?? 0) < assigned.stateVersion) return false;
    return observed?.software[target.service] === undefined && record.status === 'running';
  }
  if (!specMatches(spec, target)) return false;
  if ((observed?.appliedStateVersion ?? 0) < assigned.stateVersion) return false;
  const reported = observed?.software[target.service];
  if (reported?.version !== spec?.version) return false;
  // A service stopped on purpose says so; one meant to run must not be stopped.
  if (target.stopped !== undefined && (reported?.status === 'stopped') !== target.stopped) return false;
  return record.status === 'running';
}
