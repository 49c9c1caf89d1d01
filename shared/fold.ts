import { applyChanges } from './diff.ts';
import type { HostEvent, RecordedEvent } from './events.ts';
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
  /** Undefined until the first snapshot arrives. */
  observed?: TrackedState;
}

export function statusOf(host: HostState): HostStatus {
  return host.observed?.status ?? 'pending';
}

export function evolve(state: HostState | undefined, event: RecordedEvent): HostState {
  const next = apply(state, event);
  return { ...next, version: event.version };
}

function apply(state: HostState | undefined, event: HostEvent): HostState {
  switch (event.type) {
    case 'HostRegistered':
      return { ...event.data, version: 0, lastChangeSeq: 0 };
    case 'StateObserved': {
      if (!state) throw new Error('StateObserved before HostRegistered: the stream is corrupt');
      return {
        ...state,
        lastChangeSeq: event.data.seq,
        observedAt: event.data.observedAt,
        observed: applyChanges(state.observed ?? ({} as TrackedState), event.data.changes),
      };
    }
  }
}

export function fold(events: Iterable<RecordedEvent>, initial?: HostState): HostState | undefined {
  let state = initial;
  for (const event of events) state = evolve(state, event);
  return state;
}
