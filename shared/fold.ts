import { applyChanges } from './diff.ts';
import type {
  AssignedBy,
  HostEvent,
  HostLost,
  HostRetired,
  InstanceTerminated,
  RecordedEvent,
} from './events.ts';
import type { DesiredHostState } from './groups/model.ts';
import type { TrackedState } from './metrics.ts';
import type { HostStatus } from './schemas.ts';

/** A host as its event stream says it is at `version`. */
export interface HostState {
  hostId: string;
  group: string;
  hostType: string;
  roles: string[];
  registeredAt: string;
  /** Stream version this state reflects. */
  version: number;
  /** Sequence number of the snapshot that last changed the state (0 before the first). */
  lastChangeSeq: number;
  observedAt?: string;
  /** Stream version of the last StateObserved: a report is news about an assignment only if it came after it. */
  observedVersion?: number;
  /** Undefined until the first snapshot arrives. */
  observed?: TrackedState;
  /** Set when the host's instance ended; `afterSeq` = lastChangeSeq then, so a later observation outranks it. */
  terminated?: InstanceTerminated['data'] & { afterSeq: number };
  /** The latest desired state assigned to the host (StateAssigned), with when and by what. */
  assigned?: Assignment;
  /**
   * When the control plane last restarted the host's services (assignments for reason "restart-service"),
   * oldest first, the last few only: enough to tell "restarted 3 times in 10 minutes" from the projection.
   */
  restartedAt?: string[];
  /** Set once the host was judged lost (HostLost); never cleared: a lost host was replaced. */
  lost?: HostLost['data'];
  /** Set while a dependency of the host's services has no healthy provider (HostDegraded until HostRecovered). */
  degradedBy?: { dependency: string; dependencyHosts: string[]; at: string };
  /** Set once the host's registration ended (HostRetired). */
  retired?: HostRetired['data'];
}

export interface Assignment {
  state: DesiredHostState;
  assignedAt: string;
  by: AssignedBy;
  /** The stream version of the StateAssigned event. */
  version: number;
}

/**
 * The host's status, worst news first: an instance that ended (unless the host reported since), then lost
 * (sticky: a zombie's later reports do not bring a replaced host back), then what it reported — `degraded`
 * instead of `running` while a dependency of its services has no healthy provider.
 */
/** The reason a reconcile gives the assignment that restarts a host's dead services (AssignedBy.reason). */
export const RESTART_REASON = 'restart-service';
const KEPT_RESTARTS = 5;

export function statusOf(host: HostState): HostStatus {
  if (isTerminated(host)) return host.terminated.status;
  if (host.lost) return 'lost';
  const reported = host.observed?.status ?? 'pending';
  return reported === 'running' && host.degradedBy ? 'degraded' : reported;
}

/** The host's instance ended and the host has not reported since. */
export function isTerminated(
  host: HostState,
): host is HostState & { terminated: NonNullable<HostState['terminated']> } {
  return host.terminated !== undefined && host.terminated.afterSeq >= host.lastChangeSeq;
}

export function evolve(state: HostState | undefined, event: RecordedEvent): HostState {
  const next = apply(state, event);
  return { ...next, version: event.version };
}

function apply(state: HostState | undefined, event: RecordedEvent<HostEvent>): HostState {
  switch (event.type) {
    case 'HostRegistered':
      return { ...event.data, version: 0, lastChangeSeq: 0 };
    case 'StateObserved': {
      if (!state) throw new Error('StateObserved before HostRegistered: the stream is corrupt');
      return {
        ...state,
        lastChangeSeq: event.data.seq,
        observedAt: event.data.observedAt,
        observedVersion: event.version,
        observed: applyChanges(state.observed ?? ({} as TrackedState), event.data.changes),
      };
    }
    case 'InstanceTerminated':
      if (!state) throw new Error('InstanceTerminated before HostRegistered: the stream is corrupt');
      return { ...state, terminated: { ...event.data, afterSeq: state.lastChangeSeq } };
    case 'StateAssigned': {
      if (!state) throw new Error('StateAssigned before HostRegistered: the stream is corrupt');
      const assigned = { ...event.data, version: event.version };
      if (event.data.by.reason !== RESTART_REASON) return { ...state, assigned };
      const restartedAt = [...(state.restartedAt ?? []), event.data.assignedAt].slice(-KEPT_RESTARTS);
      return { ...state, assigned, restartedAt };
    }
    case 'HostLost':
      if (!state) throw new Error('HostLost before HostRegistered: the stream is corrupt');
      return { ...state, lost: event.data };
    case 'HostDegraded': {
      if (!state) throw new Error('HostDegraded before HostRegistered: the stream is corrupt');
      const { dependency, dependencyHosts, at } = event.data;
      return { ...state, degradedBy: { dependency, dependencyHosts, at } };
    }
    case 'HostRecovered': {
      if (!state) throw new Error('HostRecovered before HostRegistered: the stream is corrupt');
      const { degradedBy: _recovered, ...rest } = state;
      return rest;
    }
    case 'HostRetired':
      if (!state) throw new Error('HostRetired before HostRegistered: the stream is corrupt');
      return { ...state, retired: event.data };
  }
}

export function fold(events: Iterable<RecordedEvent>, initial?: HostState): HostState | undefined {
  let state = initial;
  for (const event of events) state = evolve(state, event);
  return state;
}
