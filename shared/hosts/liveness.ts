/**
 * Whether a host has gone quiet for longer than its heartbeats allow. Pure: the record and `now` come in as
 * arguments; whoever finds a host overdue records it lost (host-commands markLost).
 */
import type { LivenessPolicy } from '../groups/model.ts';
import type { HostRecord } from '../ports.ts';
import type { HostStatus } from '../schemas.ts';

export type { LivenessPolicy } from '../groups/model.ts';

/** The agent's heartbeat on AWS (agent/config.ts), three of them missed. */
export const DEFAULT_LIVENESS: LivenessPolicy = { heartbeatSeconds: 3600, missedHeartbeats: 3 };

/**
 * Statuses of a host that should be heard from. Not `pending`: a launched host that never reported is the
 * boot timeout's business. Not stopped, failed or lost: nothing more is expected of them.
 */
const SHOULD_REPORT: ReadonlySet<HostStatus> = new Set(['booting', 'running', 'draining', 'degraded']);

/** Seconds since the host was last heard from: its last snapshot's receipt, else its last change, else its registration. */
export function silentSeconds(record: HostRecord, now: Date): number {
  const since = record.lastSeen ?? record.observedAt ?? record.registeredAt;
  return (now.getTime() - Date.parse(since)) / 1000;
}

export function isOverdue(record: HostRecord, now: Date, policy: LivenessPolicy): boolean {
  if (!SHOULD_REPORT.has(record.status)) return false;
  return silentSeconds(record, now) > policy.heartbeatSeconds * policy.missedHeartbeats;
}
