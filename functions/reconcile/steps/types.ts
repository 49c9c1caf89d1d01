import type { HostProvisioner } from '../../../shared/groups/host-provisioning.ts';
import type {
  AlarmPublisher,
  DocumentStore,
  FleetPort,
  StatePublisher,
} from '../../../shared/groups/ports.ts';
import type { EventStore, HostStore } from '../../../shared/ports.ts';
import type { Telemetry } from '../../../shared/telemetry.ts';
import type { PlanStore } from '../plan-store.ts';

/**
 * What the Plan step hands to the rest of the state machine. Deliberately tiny: the plan itself stays in the
 * plan store, so the execution payload stays far below Step Functions' 256 KB however large the group.
 */
export interface PlanRef {
  planId: string;
  group: string;
  /**
   * The run that planned, as the group's lease knows it (execution name and start): every pass of one
   * execution is the same run.
   */
  run: string;
  /**
   * `held`: this run holds the group and goes on with the plan. `queued`: another run holds it; wait and ask
   * again with `ticket`. `served`: the holder planned after this trigger arrived, so its work is done.
   */
  lease: 'held' | 'queued' | 'served';
  /** The ticket a queued run waits with (null otherwise). */
  ticket: number | null;
  /** `null` rather than absent: JSONPath in the state machine cannot select a missing member. */
  rolloutId: string | null;
  /** The plan puts the rollout's hosts back (abort, or a failed wave) instead of moving them on. */
  revert: boolean;
  waves: number[];
  deadlineSeconds: number;
  pollSeconds: number;
  /** How many passes of this run came before this one (see finishStep: a plan that launched plans again). */
  followUps: number;
}

export interface ReconcileRequest {
  group: string;
  reason: string;
  /** null on a follow-up pass that carries no rollout (JSONPath passes nulls, not absences). */
  rolloutId?: string | null;
  /** Set by the state machine when it plans again within one run. */
  followUps?: number;
  /** Set by the state machine while the run waits for the group (see PlanRef.lease). */
  ticket?: number | null;
}

export type WaveStatus = 'converged' | 'waiting' | 'failed' | 'timed-out' | 'aborted';

export interface CheckResult {
  status: WaveStatus;
  /** Why a wave failed; becomes the Cause of the WaveFailed state. */
  detail: string;
  /** When the wave fails if it has not converged; a pause pushes it on. */
  deadline: string;
}

export type ReconcileEvent =
  | { step: 'plan'; request: ReconcileRequest; executionName?: string; executionStart?: string }
  | { step: 'apply'; plan: PlanRef; wave: number }
  | { step: 'check'; plan: PlanRef; wave: number; deadline: string }
  | { step: 'rollback'; plan: PlanRef; failure?: { Error?: string; Cause?: string } }
  | { step: 'finish'; plan: PlanRef };

export interface ReconcileSettings {
  /** Seconds between two convergence checks of a wave. */
  pollSeconds: number;
  /**
   * How long one Check may keep looking (every checkIntervalMs) before it answers "waiting" and the state machine
   * waits pollSeconds; default 0 (look once).
   */
  checkWindowMs?: number;
  /** Between two looks within the window; default 200 ms. */
  checkIntervalMs?: number;
  /** The ingest's heartbeat coalescing window: a host is lost only that much after its missed heartbeats. */
  heartbeatCoalesceSeconds: number;
}

export interface ReconcileDeps {
  events: EventStore;
  hosts: HostStore;
  /** Groups, rollouts, the group's lease and plans. */
  documents: DocumentStore;
  fleet: FleetPort;
  /**
   * Registers each launched host and puts its secret where only its machine reads it (EC2: SSM; locally a
   * file). A host is registered before anything is assigned to it: its stream must exist first.
   */
  provisioner: HostProvisioner;
  publisher: StatePublisher;
  plans: PlanStore;
  /** Tells people of the alarms the run raises (SNS); without it they are in the stream and GET /alarms only. */
  alarms?: AlarmPublisher;
  settings: ReconcileSettings;
  now: () => Date;
  /** Counts how long waves took to settle (the events a run appends are counted by the event store). */
  telemetry?: Telemetry;
}
