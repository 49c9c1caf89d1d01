import { emfLine as genericEmfLine } from '../../shared/emf.ts';
import type { BatchSummary } from './handler.ts';

/** One log line per batch becomes metrics without a PutMetricData call (which would cost a request per batch). */
export function emfLine(summary: BatchSummary, timestamp: number): string {
  const counts: Record<string, number> = {
    SnapshotMessages: summary.records,
    FailedMessages: summary.failed,
  };
  for (const [outcome, count] of Object.entries(summary.outcomes)) {
    counts[`Snapshots_${outcome.replace(':', '_')}`] = count ?? 0;
  }
  return genericEmfLine({ namespace: 'Fleetfold/Ingest', counts, timestamp });
}
