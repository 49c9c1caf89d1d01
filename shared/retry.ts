import { setTimeout as sleep } from 'node:timers/promises';
import { ConflictError } from './errors.ts';

/**
 * The one retry loop for lost optimistic-concurrency races in the code base: every conditional write that can
 * lose to another writer (an append at a taken version, a guarded projection or document write) runs inside it.
 */
export interface RetryPolicy {
  /** How many tries in all before the ConflictError propagates. */
  attempts: number;
  /** Pause before try number `attempt + 1` (attempt is 1-based). */
  backoffMs: (attempt: number) => number;
}

/** Full jitter keeps racing writers from retrying in lockstep; capped, so eight tries stay well under a second. */
export function jitteredBackoffMs(attempt: number, random: () => number = Math.random): number {
  return random() * Math.min(100, 5 * 2 ** attempt);
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 8, backoffMs: jitteredBackoffMs };

/** A race that cannot be retried without writing twice (part of a multi-event append landed). */
function retriable(error: unknown): error is ConflictError {
  return error instanceof ConflictError && error.details.partial !== true;
}

/** Runs `attempt` until it does not lose a race; `attempt` must read afresh each time it runs. */
export async function retryOnConflict<T>(
  attempt: (tryNumber: number) => Promise<T>,
  policy: RetryPolicy = DEFAULT_RETRY,
): Promise<T> {
  if (!Number.isInteger(policy.attempts) || policy.attempts < 1)
    throw new RangeError('attempts must be a positive integer');
  for (let tryNumber = 1; ; tryNumber += 1) {
    try {
      return await attempt(tryNumber);
    } catch (error) {
      if (!retriable(error) || tryNumber >= policy.attempts) throw error;
      await sleep(policy.backoffMs(tryNumber));
    }
  }
}
