import { setTimeout as sleep } from 'node:timers/promises';
import { ConflictError } from './errors.ts';
import type { NewEvent } from './events.ts';
import type { EventStore } from './ports.ts';

export interface AppendWithRetryOptions {
  /** How many times to decide and append before giving up; default 8. */
  attempts?: number;
  recordedAt?: () => Date;
  /** Pause before retry number `attempt` (1-based); default a few jittered milliseconds, growing. */
  backoffMs?: (attempt: number) => number;
}

export interface AppendOutcome {
  /** The stream's version after the append (unchanged when `decide` returned no events). */
  version: number;
  /** How many tries it took, 1 when nobody raced us. */
  attempts: number;
}

/**
 * Optimistic concurrency: decide on the current version, append at it, and when somebody else appended first,
 * decide again on the new version. After the last attempt the ConflictError propagates.
 */
export async function appendWithRetry(
  store: EventStore,
  stream: string,
  decide: (currentVersion: number) => NewEvent[] | Promise<NewEvent[]>,
  options: AppendWithRetryOptions = {},
): Promise<AppendOutcome> {
  const attempts = options.attempts ?? 8;
  if (!Number.isInteger(attempts) || attempts < 1)
    throw new RangeError('attempts must be a positive integer');
  const recordedAt = options.recordedAt ?? (() => new Date());
  const backoffMs = options.backoffMs ?? defaultBackoffMs;
  for (let attempt = 1; ; attempt += 1) {
    const current = await store.currentVersion(stream);
    const events = await decide(current);
    if (events.length === 0) return { version: current, attempts: attempt };
    try {
      return { version: await store.append(stream, current, events, recordedAt()), attempts: attempt };
    } catch (error) {
      // A conflict after part of the events landed cannot be retried without writing those twice.
      if (!(error instanceof ConflictError) || error.details.partial || attempt >= attempts) throw error;
      await sleep(backoffMs(attempt));
    }
  }
}

/** Full jitter keeps racing writers from retrying in lockstep. */
function defaultBackoffMs(attempt: number): number {
  return Math.random() * Math.min(100, 5 * 2 ** attempt);
}
