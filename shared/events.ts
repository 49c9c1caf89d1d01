import type { Change } from './diff.ts';
import type { GroupEvent } from './groups/events.ts';
import type { DesiredHostState } from './groups/model.ts';
import type { Metrics } from './metrics.ts';
import type { RolloutEvent } from './rollouts/rollout-events.ts';

/** A host was registered and given its secret (the secret itself is never an event). */
export interface HostRegistered {
  type: 'HostRegistered';
  data: { hostId: string; group: string; hostType: string; roles: string[]; registeredAt: string };
}

/** A snapshot showed the tracked state changed; `changes` turn the previous state into the new one. */
export interface StateObserved {
  type: 'StateObserved';
  data: {
    seq: number;
    observedAt: string;
    changes: Change[];
    /** S3's receipt time, and the raw load and sessions then: the projection's lastSeen and metrics. */
    receivedAt?: string;
    metrics?: Metrics;
  };
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

/** What assigned a desired state: a rollout, a reconcile run, a rule. Any of them may be absent. */
export interface AssignedBy {
  /** The reconcile run (its plan id) that decided the state. */
  run?: string;
  rolloutId?: string;
  rule?: string;
  /** Why, in words: "rollout", "revert", "replacement", "load balancer members" … */
  reason?: string;
}

/**
 * The control plane told the host what to be: the full desired state, so any assignment can be read back
 * ("what was this host told at version N") and compared with what it reported (drift).
 */
export interface StateAssigned {
  type: 'StateAssigned';
  data: { state: DesiredHostState; assignedAt: string; by: AssignedBy };
}

export type HostEvent = HostRegistered | StateObserved | InstanceTerminated | StateAssigned;
export type HostEventType = HostEvent['type'];

/** Every event any stream holds: host streams hold HostEvents, group streams GroupEvents, rollout streams RolloutEvents. */
export type FleetEvent = HostEvent | GroupEvent | RolloutEvent;

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
