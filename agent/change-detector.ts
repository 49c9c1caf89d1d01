import { diff, jsonEqual } from '../shared/diff.ts';
import { type BandThresholds, splitMetrics, type TrackedState } from '../shared/metrics.ts';
import type { MachineState } from '../shared/schemas.ts';

export type PostReason = 'first' | 'changed' | 'heartbeat';

export type PostDecision = { post: false } | { post: true; reason: PostReason; changes?: number };

/** What the detector remembers: the tracked part of the last state handed over for posting, and when a post last succeeded. */
export interface LastPost {
  tracked: TrackedState;
  /** Milliseconds since the epoch of the last successful post; undefined while none has succeeded yet. */
  postedAt: number | undefined;
}

export interface ChangeDetectorOptions {
  heartbeatMs: number;
  thresholds: BandThresholds;
}

/**
 * Decides whether an observation must be posted. Only the tracked state counts — raw load and session
 * counts are replaced by their bands — so a wiggle inside a band costs no upload and no event-log write,
 * while a band crossing does. Without a change, a heartbeat keeps the host's lastSeen fresh.
 */
export function decidePost(
  observed: MachineState,
  last: LastPost | undefined,
  now: number,
  options: ChangeDetectorOptions,
): PostDecision {
  if (!last) return { post: true, reason: 'first' };
  const { tracked } = splitMetrics(observed, options.thresholds);
  if (!jsonEqual(tracked, last.tracked)) {
    return { post: true, reason: 'changed', changes: diff(last.tracked, tracked).length };
  }
  if (last.postedAt === undefined || now - last.postedAt >= options.heartbeatMs) {
    return { post: true, reason: 'heartbeat' };
  }
  return { post: false };
}
