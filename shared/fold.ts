import { applyChanges } from './diff.ts';
import type { AssignedBy, HostEvent, InstanceTerminated, RecordedEvent } from './events.ts';
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
}

export interface Assignment {
  state: DesiredHostState;
  assignedAt: string;
  by: AssignedBy;
  /** The stream version of the StateAssigned event. */
  version: number;
}

export function statusOf(host: HostState): HostStatus {
  if (host.terminated && host.terminated.afterSeq >= host.lastChangeSeq) return host.terminated.status;
  return host.observed?.status ?? 'pending';
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
    case 'StateAssigned':
      if (!state) throw new Error('StateAssigned before HostRegistered: the stream is corrupt');
      return { ...state, assigned: { ...event.data, version: event.version } };
  }
}

export function fold(events: Iterable<RecordedEvent>, initial?: HostState): HostState | undefined {
  let state = initial;
  for (const event of events) state = evolve(state, event);
  return state;
}
