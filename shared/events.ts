import type { AssignedBy } from './assigned-by.ts';
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
export type { AssignedBy } from './assigned-by.ts';

/**
 * The control plane told the host what to be: the full desired state, so any assignment can be read back
 * ("what was this host told at version N") and compared with what it reported (drift).
 */
export interface StateAssigned {
  type: 'StateAssigned';
  data: { state: DesiredHostState; assignedAt: string; by: AssignedBy };
}

/**
 * The host went silent past its heartbeats (shared/hosts/liveness.ts) and is treated as gone: it is replaced,
 * so it stays lost even if it reports again (a zombie), until its instance is recorded terminated.
 */
export interface HostLost {
  type: 'HostLost';
  data: { at: string; lastSeen?: string; silentSeconds: number; reason: string };
}

/** A service the host's services depend on has no healthy provider (shared/hosts/dependency-health.ts). */
export interface HostDegraded {
  type: 'HostDegraded';
  data: {
    at: string;
    /** The service depended on. */
    dependency: string;
    /** The hosts that should provide it (none healthy). */
    dependencyHosts: string[];
    reason: string;
  };
}

/** The dependency that degraded the host has a healthy provider again. */
export interface HostRecovered {
  type: 'HostRecovered';
  data: { at: string; dependency: string };
}

/**
 * The host's registration ended: its secret was revoked, and the ingest refuses whatever it still sends.
 * Final: a retired host id is never registered again.
 */
export interface HostRetired {
  type: 'HostRetired';
  data: { at: string; reason: string };
}

export type HostEvent =
  | HostRegistered
  | StateObserved
  | InstanceTerminated
  | StateAssigned
  | HostLost
  | HostDegraded
  | HostRecovered
  | HostRetired;
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
