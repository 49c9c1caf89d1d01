import type { Change } from './diff.ts';
import type { GroupEvent } from './groups/events.ts';

/** A host was registered and given its secret (the secret itself is never an event). */
export interface HostRegistered {
  type: 'HostRegistered';
  data: { hostId: string; group: string; hostType: string; roles: string[]; registeredAt: string };
}

/** A snapshot showed the tracked state changed; `changes` turn the previous state into the new one. */
export interface StateObserved {
  type: 'StateObserved';
  data: { seq: number; observedAt: string; changes: Change[] };
}

/**
 * The host's instance is gone (a process or EC2 instance that ended). `status` is what the host now is:
 * 'failed' when it died unasked, 'stopped' when the reconcile meant it to go. A later StateObserved (the
 * same host id running again) supersedes it.
 */
export interface InstanceTerminated {
  type: 'InstanceTerminated';
  data: { instanceId: string; reason: string; status: 'failed' | 'stopped'; at: string };
}

export type HostEvent = HostRegistered | StateObserved | InstanceTerminated;
export type HostEventType = HostEvent['type'];

/** Every event any stream holds: host streams hold HostEvents, group streams GroupEvents. */
export type FleetEvent = HostEvent | GroupEvent;

/** An event as stored: its place in its stream and an id that makes redelivery recognisable. */
export type RecordedEvent<E extends FleetEvent = HostEvent> = E & {
  stream: string;
  version: number;
  /** Derived from what caused the event (e.g. the snapshot's object key), never random. */
  eventId: string;
  recordedAt: string;
};

export type NewEvent<E extends FleetEvent = HostEvent> = E & { eventId: string };

export function hostStream(hostId: string): string {
  return `host#${hostId}`;
}
