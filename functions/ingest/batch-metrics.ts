import type { RejectReason } from '../../shared/ports.ts';
import { METRICS, type Telemetry } from '../../shared/telemetry.ts';
import type { BatchSummary, Outcome } from './handler.ts';

/** Outcomes that took a new snapshot in (a change, a heartbeat, one coalesced into lastSeen). */
const INGESTED: ReadonlySet<Outcome> = new Set(['changed', 'heartbeat', 'coalesced']);
const REFUSED = 'rejected:';

/**
 * One batch's outcomes as metrics: snapshots taken in, and refused ones by reason. Duplicates and objects
 * already gone are neither: they are redeliveries of something counted once already.
 */
export function reportIngestBatch(telemetry: Telemetry): (summary: BatchSummary) => void {
  return (summary) => {
    let ingested = 0;
    for (const [outcome, count] of Object.entries(summary.outcomes) as [Outcome, number][]) {
      if (INGESTED.has(outcome)) ingested += count;
      else if (outcome.startsWith(REFUSED)) {
        const reason = outcome.slice(REFUSED.length) as RejectReason;
        telemetry.count(METRICS.snapshotsRefused, count, { reason });
      }
    }
    telemetry.count(METRICS.snapshotsIngested, ingested);
  };
}
