/**
 * Whether a host has gone quiet for longer than its heartbeats allow. Pure: the record and `now` come in as
 * arguments; whoever finds a host overdue records it lost (host-commands markLost).
 */
import type { LivenessPolicy } from '../groups/model.ts';
import type { HostRecord } from '../ports.ts';
import type { HostStatus } from '../schemas.ts';

export type { LivenessPolicy } from '../groups/model.ts';

/**
 * The ingest's heartbeat coalescing window by default (HEARTBEAT_COALESCE_SECONDS): read by the ingest, which
 * coalesces, and by the monitor and the reconcile, which allow for it.
 */
export const DEFAULT_HEARTBEAT_COALESCE_SECONDS = 60;
export const HEARTBEAT_COALESCE_ENV = 'HEARTBEAT_COALESCE_SECONDS';

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

/**
 * A group's liveness policy as the checks apply it. The ingest rewrites an unchanged host's lastSeen at most
 * once per coalescing window (functions/ingest/config.ts, HEARTBEAT_COALESCE_SECONDS: it saves a write per
 * heartbeat), so the lastSeen of a host that heartbeats on time may be that much older than its last
 * snapshot: the window is grace on top of the missed heartbeats, or every host whose heartbeats are shorter
 * than the window would look lost.
 */
export interface EffectiveLiveness extends LivenessPolicy {
  graceSeconds: number;
}

/** Seconds of silence after which a host counts as lost. */
export function lostAfterSeconds(liveness: EffectiveLiveness): number {
  return liveness.heartbeatSeconds * liveness.missedHeartbeats + liveness.graceSeconds;
}

export function isOverdue(record: HostRecord, now: Date, liveness: EffectiveLiveness): boolean {
  if (!SHOULD_REPORT.has(record.status)) return false;
  return silentSeconds(record, now) > lostAfterSeconds(liveness);
}
