/** The shape of an alarm's diagnosis, apart from how it is read, so events can carry it without import cycles. */
import type { AssignedBy } from '../assigned-by.ts';
import type { Change } from '../diff.ts';

export interface SnapshotSummary {
  seq: number;
  observedAt: string;
  changes: Change[];
  /** Changes left out past MAX_CHANGES_PER_SNAPSHOT. */
  omittedChanges?: number;
}

export interface HostDiagnosis {
  hostId: string;
  hostType: string;
  /** 'unknown' when the host has no record (never registered, or its id is wrong). */
  status: string;
  lastSeen?: string;
  /** Each service as the host last reported it. */
  services: Record<string, { status: string; version: string }>;
  /** Its last snapshots that changed something, newest first. */
  lastSnapshots: SnapshotSummary[];
  /** The last desired state it was told, and what told it. */
  assigned?: { stateVersion: number; by: AssignedBy };
}

export interface Diagnosis {
  hosts: HostDiagnosis[];
  /** The failing service first, then what depends on it (transitively), then what it depends on (transitively). */
  dependencyChain: string[];
  /** The failing service: the one named, else the first a diagnosed host reports failed. */
  service?: string;
  /** Hosts named but not diagnosed past MAX_DIAGNOSED_HOSTS. */
  omittedHosts?: number;
}
