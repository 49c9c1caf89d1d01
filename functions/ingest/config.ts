import { DEFAULT_HEARTBEAT_COALESCE_SECONDS } from '../../shared/hosts/liveness.ts';
import type { IngestConfig } from '../../shared/ingest.ts';
import { DEFAULT_BANDS, parseThresholds } from '../../shared/metrics.ts';
import { type Env, heartbeatCoalesceSeconds, numberOr, required } from '../env.ts';

export interface IngestFunctionConfig {
  bucket: string;
  eventsTable: string;
  hostsTable: string;
  secretsKeyId: string;
  /** The reconcile's state machine: a host reporting a failure starts a run of its group. */
  reconcileStateMachineArn: string;
  /** Where the hourly usage counters are added (GET /cost); absent: nothing is counted. */
  documentsTable?: string;
  ingest: IngestConfig;
}

export const DEFAULT_INGEST_CONFIG: IngestConfig = {
  clockSkewSeconds: 300,
  maxSnapshotBytes: 256 * 1024,
  heartbeatCoalesceSeconds: DEFAULT_HEARTBEAT_COALESCE_SECONDS,
  bands: DEFAULT_BANDS,
};

export function loadIngestConfig(env: Env): IngestFunctionConfig {
  return {
    bucket: required(env, 'BUCKET'),
    eventsTable: required(env, 'EVENTS_TABLE'),
    hostsTable: required(env, 'HOSTS_TABLE'),
    secretsKeyId: required(env, 'SECRETS_KEY_ID'),
    reconcileStateMachineArn: required(env, 'RECONCILE_STATE_MACHINE_ARN'),
    ...(env.DOCUMENTS_TABLE ? { documentsTable: env.DOCUMENTS_TABLE } : {}),
    ingest: {
      clockSkewSeconds: numberOr(env, 'CLOCK_SKEW_SECONDS', DEFAULT_INGEST_CONFIG.clockSkewSeconds),
      maxSnapshotBytes: numberOr(env, 'MAX_SNAPSHOT_BYTES', DEFAULT_INGEST_CONFIG.maxSnapshotBytes),
      heartbeatCoalesceSeconds: heartbeatCoalesceSeconds(env),
      bands: {
        load: env.LOAD_BANDS ? parseThresholds(env.LOAD_BANDS, 'LOAD_BANDS') : DEFAULT_BANDS.load,
        sessions: env.SESSION_BANDS
          ? parseThresholds(env.SESSION_BANDS, 'SESSION_BANDS')
          : DEFAULT_BANDS.sessions,
      },
    },
  };
}
