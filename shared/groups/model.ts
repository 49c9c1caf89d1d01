/**
 * The shapes of issue 3 (desired state and reconcile), shared by the DSL compiler, the planner, the reconcile
 * functions, the fan-out, the agent and the API. Pure types: no behaviour lives here.
 */
import type { CompiledRule } from '../rules/types.ts';
import type { ScalingPolicy } from '../scaling/policy-schema.ts';
import type { Channel, HostStatus } from '../schemas.ts';

/* ───────────── Group definitions (what an operator writes, YAML or JSON) ───────────── */

export interface ServiceSpec {
  version: string;
  /** Key-values handed to the service (e.g. "sip.port": "5060"). */
  config?: Record<string, string>;
  /** Port the service listens on (local mode starts a process there). */
  port?: number;
  /**
   * Stopped on purpose (a `stop` rollout): the agent stops the process and reports it `stopped`; no default
   * rule restarts it (they act on `failed` only) until a `start` rollout takes the mark away.
   */
  stopped?: true;
}

export interface HostTypeDefinition {
  roles: string[];
  /** EC2 instance type, e.g. "c7g.large". */
  instanceType: string;
  /** Fixed size, or min/max for scaling (count defaults to min). */
  count?: number;
  min?: number;
  max?: number;
  /** AMI id or launch template name (EC2 only). */
  image?: string;
  launchTemplate?: string;
  /** Services this host type runs, with their versions. */
  services: Record<string, ServiceSpec>;
  /** Set when this host type is a load balancer: the services it balances (must run on other host types). */
  balances?: string[];
  /** Channel pools this host type serves (voice, sms, mms, video). */
  channels?: Channel[];
  /**
   * Scaled by the monitor between min and max (count, else min, is where it starts); a later definition keeps
   * the autoscaler's count, clamped into its min/max.
   */
  scaling?: ScalingPolicy;
}

export interface DrainPolicy {
  /** Wait until the host's live sessions reach zero before altering it. */
  waitForSessions: boolean;
  timeoutSeconds: number;
  /** At the timeout: go ahead anyway ("proceed") or fail the wave ("fail"). */
  onTimeout: 'proceed' | 'fail';
}

export interface RolloutPolicy {
  /** Selector for the size of each wave among the hosts to change, e.g. "max(1, 25%)". */
  wave: string;
  /** Replace/launch the new host before removing the old one. */
  surgeFirst: boolean;
  /** Seconds to wait for a wave's hosts to report the new version before the wave fails. */
  convergenceTimeoutSeconds: number;
}

export interface LivenessPolicy {
  /** How often a healthy host reports even when nothing changed. */
  heartbeatSeconds: number;
  /** Heartbeats a host may miss in a row before it is overdue. */
  missedHeartbeats: number;
}

export interface Rule {
  /** e.g. "group.running && hosts.booted == 0", "host.status == failed", "load > 0.8" */
  when: string;
  /** e.g. "boot", "replace", "add-to-lb", "scale-out(media, 1)", "alarm" */
  then: string;
}

export interface GroupConfiguration {
  rollout: RolloutPolicy;
  drain: DrainPolicy;
  /** One budget for rollouts, scale-in and replacement: hosts out of service at once, a selector. */
  disruptionBudget: string;
  rules: Rule[];
  /** When a silent host counts as lost (absent in documents written before it existed: the defaults). */
  liveness?: LivenessPolicy;
  regions?: string[];
}

export interface GroupDefinition {
  name: string;
  hostTypes: Record<string, HostTypeDefinition>;
  /** service → the services it depends on. Every service named anywhere must appear here. */
  dependencies: Record<string, string[]>;
  configuration: GroupConfiguration;
}

/* ───────────── Compiled groups ───────────── */

export interface CompiledHostType extends HostTypeDefinition {
  name: string;
  /** Desired number of hosts now (count, else min). */
  desired: number;
  /** Dependency level: 0 = depends on nothing; start in ascending, stop in descending order. */
  level: number;
}

export interface CompiledGroup {
  name: string;
  /** Version of the definition in the group's event stream. */
  definitionVersion: number;
  hostTypes: Record<string, CompiledHostType>;
  /** Host type names in start order (dependencies first); ties broken by name. */
  startOrder: string[];
  /** Services grouped by dependency level: serviceLevels[0] depends on nothing. */
  serviceLevels: string[][];
  /** service → the services that depend on it (directly). */
  dependents: Record<string, string[]>;
  /** service → host types running it. */
  serviceHosts: Record<string, string[]>;
  /** service → load balancer host types in front of it. */
  balancedBy: Record<string, string[]>;
  configuration: GroupConfiguration;
  /** The rules in force: the defaults, then the definition's own (configuration.rules) compiled. */
  rules: CompiledRule[];
}

/* ───────────── Selectors ───────────── */

/** A host as selectors see it. */
export interface SelectableHost {
  hostId: string;
  /** Versions of the service a rollout is about (or of any service when the selector names none). */
  versions: Record<string, string>;
  liveSessions: number;
  load: number;
}

/* ───────────── Desired state per host ───────────── */

/** What the control plane wants one host to run: sent to it (signed) by the fan-out. */
export interface DesiredHostState {
  hostId: string;
  group: string;
  hostType: string;
  /** Strictly increasing per host; the agent ignores anything not above what it applied. */
  stateVersion: number;
  services: Record<string, ServiceSpec>;
  config: Record<string, string>;
  /** For load balancer hosts: service → member endpoints ("host:port" or URL). */
  upstreams?: Record<string, string[]>;
  /** "running" to run the services; "draining" to stop taking new sessions; "stopped" to stop them. */
  mode: 'running' | 'draining' | 'stopped';
  /**
   * What the host was launched as (launchSpecOf: instance type, image, launch template, roles): a host whose
   * mark differs from its type's is replaced by a `replaceHostType` rollout. Absent on hosts launched before.
   */
  launchedAs?: string;
}

/* ───────────── What the planner sees of the actual cluster ───────────── */

export interface ActualHost {
  hostId: string;
  hostType: string;
  status: HostStatus;
  /** Versions the host reports running, per service. */
  software: Record<string, string>;
  /** Desired state version the host reports it applied (0 = none). */
  appliedStateVersion: number;
  /** Desired state version last assigned to it (0 = none). */
  assignedStateVersion: number;
  liveSessions: number;
  load: number;
  /** ISO time the host was asked to drain, if it is draining. */
  drainingSince?: string;
  /** Internal address, for load balancer membership. */
  address?: string;
  /** Where each service answers, as the host reports it: service → "host:port" (local mode picks free ports). */
  endpoints?: Record<string, string>;
  /**
   * Running but not fit to serve (a service it runs reports failed, or a rule took it out): no load balancer
   * routes to it until it is healthy again.
   */
  unhealthy?: boolean;
}

/* ───────────── Plans ───────────── */

export type Action =
  | { kind: 'launch'; hostId: string; hostType: string; state: DesiredHostState; replaces?: string }
  | { kind: 'terminate'; hostId: string; reason: string }
  | { kind: 'drain'; hostId: string; state: DesiredHostState }
  | { kind: 'assign'; hostId: string; state: DesiredHostState }
  | { kind: 'update-lb'; hostId: string; state: DesiredHostState }
  | { kind: 'notify'; hostIds: string[]; service: string; reason: string }
  /** A rule asked for it: the instance restarts in place (local mode: the host's processes start again). */
  | { kind: 'reboot'; hostId: string };

export interface Wave {
  index: number;
  actions: Action[];
  /** Hosts this wave takes out of service (counted against the disruption budget). */
  disrupted: string[];
  /**
   * Hosts that must report `stateVersion` (appliedStateVersion ≥) before the next wave; with `drained`, also
   * live sessions 0 (or the drain policy's timeout passed).
   */
  awaits: { hostId: string; stateVersion: number; drained?: boolean }[];
  /** Why a host is told what this wave tells it, where it is not the run's own reason (a rule's restart). */
  reasons?: Record<string, string>;
}

export interface Plan {
  group: string;
  waves: Wave[];
  /** Hosts held back (e.g. live sessions, drain not timed out); a later reconcile picks them up. */
  deferred: { hostId: string; reason: string }[];
}

/* ───────────── Rollouts ───────────── */

/** What a rollout does to the selected hosts' service: change it (default), stop it, start it, remove it. */
export type RolloutOperation = 'update' | 'stop' | 'start' | 'remove';

/** Why a rollout was asked for when no operator asked for it: a definition declared a change. */
export type RolloutCause = { kind: 'declared'; definitionVersion: number };

/** The host type fields a host is launched with: a change of one replaces the type's hosts. */
export interface LaunchSpec {
  instanceType: string;
  roles: string[];
  image?: string;
  launchTemplate?: string;
}

export interface RolloutRequest {
  /** For `replaceHostType`: the host type's first service (by name), whose hosts it replaces. */
  service: string;
  /** New version, or new config (at least one, for an update). */
  version?: string;
  config?: Record<string, string>;
  /** Which hosts: a selector (default "all"). */
  select?: string;
  /** Default 'update'. */
  operation?: RolloutOperation;
  /** Replaces the hosts of this host type (surge-first) with hosts launched as its definition now says. */
  replaceHostType?: string;
  /** The rollout this one reverts (POST /rollouts/{id}/revert). */
  revertOf?: string;
  cause?: RolloutCause;
}

/** What the rollout's hosts ran before it, recorded when it was requested: what a revert goes back to. */
export interface RolloutFrom {
  version?: string;
  config?: Record<string, string>;
  stopped?: true;
  /** For `replaceHostType`: what the hosts were launched as. */
  launch?: LaunchSpec;
}

/** `reverting` is not final: the reconcile is putting the touched hosts back, then says aborted or rolled-back. */
export type RolloutStatus =
  | 'pending'
  | 'running'
  | 'paused'
  | 'reverting'
  | 'succeeded'
  | 'failed'
  | 'rolled-back'
  | 'aborted';

export interface Rollout extends RolloutRequest {
  id: string;
  group: string;
  status: RolloutStatus;
  /** Version of the service before the rollout (for rollback). */
  previousVersion?: string;
  /** The service's spec (first host type running it) when the rollout was requested. */
  from?: RolloutFrom;
  createdAt: string;
  updatedAt: string;
  waves: { index: number; hosts: string[]; status: 'pending' | 'running' | 'done' | 'failed' }[];
  hosts: { done: string[]; pending: string[]; failed: string[] };
  error?: string;
  /** Set once the rollout is being undone: how it will end (aborted by an operator, rolled back by a failure) and why. */
  /** Set once it turned to reverting: why, how it ends, and the revert's own waves (the rollout's stay as they were). */
  revert?: {
    outcome: 'aborted' | 'rolled-back';
    reason: string;
    waves?: { index: number; hosts: string[]; status: 'pending' | 'running' | 'done' | 'failed' }[];
  };
}
