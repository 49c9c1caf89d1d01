/**
 * Whether a host may be altered now. Sessions are calls and streams in progress: a host carrying any keeps its
 * state until they end (or its drain times out per policy), and it takes no new ones once drained.
 */
import type { DrainPolicy } from './model.ts';
import { isDraining, type Slot } from './planner-projection.ts';

export type Readiness =
  | { kind: 'ready' }
  /** Drain it in this plan first. */
  | { kind: 'drain' }
  | { kind: 'defer'; reason: string };

const READY: Readiness = { kind: 'ready' };
const DRAIN: Readiness = { kind: 'drain' };

export function readiness(slot: Slot, policy: DrainPolicy, now: number): Readiness {
  if (slot.liveSessions === 0) return READY;
  if (!isDraining(slot)) return DRAIN;
  if (!policy.waitForSessions) return READY;
  const since = slot.actual?.drainingSince;
  const started = since === undefined ? Number.NaN : Date.parse(since);
  // A drain whose start nobody recorded is taken to start now: it may last a full timeout, never less.
  const deadline = (Number.isNaN(started) ? now : started) + policy.timeoutSeconds * 1000;
  const sessions = `${slot.liveSessions} live session${slot.liveSessions === 1 ? '' : 's'}`;
  if (now < deadline) {
    return {
      kind: 'defer',
      reason: `draining: ${sessions}, drain times out at ${new Date(deadline).toISOString()}`,
    };
  }
  if (policy.onTimeout === 'proceed') return READY;
  return {
    kind: 'defer',
    reason: `drain timed out after ${policy.timeoutSeconds}s with ${sessions} (onTimeout: fail)`,
  };
}
