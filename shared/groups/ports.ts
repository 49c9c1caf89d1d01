/**
 * Ports added for desired state and reconcile (issue 3). Adapters live in shared/adapters/, like the others.
 */

import type { Diagnosis } from '../alarms/diagnosis.ts';
import type { HostIdentity } from '../hosts/host-decider.ts';
import type { DesiredHostState, Plan } from './model.ts';

/* ───────────── Documents: projections that are not hosts (groups, rollouts, desired host states) ───────────── */

/**
 * `scaling`: the autoscaler's memory of a group (shared/scaling/scaling-document.ts); `scaling-demand`: one
 * completed hour of a host type's demand, written once, read for the predictor's lookback weeks
 * (shared/scaling/demand-memory.ts).
 */
export type DocumentKind =
  | 'group'
  | 'rollout'
  | 'desired'
  | 'plan'
  | 'lease'
  | 'alarm'
  | 'scaling'
  | 'scaling-demand';

export interface PutOptions {
  /**
   * When the document may go: the store deletes it some time after (DynamoDB's TTL: typically within days, so
   * a reader that cares checks the time itself). Local dynalite never deletes it.
   */
  expiresAt?: Date;
}

export interface StoredDocument<T> {
  kind: DocumentKind;
  id: string;
  /** Optimistic-concurrency version, 1 for a new document; also the HTTP ETag of groups. */
  version: number;
  body: T;
  updatedAt: string;
}

/**
 * A small table of versioned documents (DynamoDB: pk `kind`, sk `id`): single-item conditional writes only.
 */
export interface DocumentStore {
  get<T>(kind: DocumentKind, id: string): Promise<StoredDocument<T> | undefined>;
  /** Writes version `expectedVersion + 1`; ConflictError when the stored version is not `expectedVersion` (0 = must not exist). */
  put<T>(
    kind: DocumentKind,
    id: string,
    body: T,
    expectedVersion: number,
    updatedAt: Date,
    options?: PutOptions,
  ): Promise<StoredDocument<T>>;
  /** ConflictError when the stored version is not `expectedVersion`. */
  delete(kind: DocumentKind, id: string, expectedVersion: number): Promise<void>;
  /** Pages in id order; `descending` pages from the highest id down (alarms, newest first). */
  list<T>(
    kind: DocumentKind,
    limit: number,
    cursor?: string,
    options?: { descending?: boolean },
  ): Promise<{ documents: StoredDocument<T>[]; next?: string }>;
}

/* ───────────── The fleet: EC2 or local processes ───────────── */

export interface LaunchRequest {
  hostId: string;
  group: string;
  hostType: string;
  roles: string[];
  instanceType: string;
  image?: string;
  launchTemplate?: string;
  /** The desired state the new host starts from; with hostId it makes the launch idempotent (EC2 ClientToken). */
  stateVersion: number;
  /** Where the host finds its HMAC secret (EC2: an SSM SecureString parameter name; local: a file path). */
  secretRef: string;
}

export interface FleetInstance {
  hostId: string;
  instanceId: string;
  state: 'pending' | 'running' | 'stopping' | 'stopped' | 'terminated';
}

export interface FleetPort {
  /** Idempotent for the same (hostId, stateVersion): a retried wave launches nothing twice. */
  launch(request: LaunchRequest): Promise<FleetInstance>;
  terminate(hostId: string): Promise<void>;
  reboot(hostId: string): Promise<void>;
  describe(group: string): Promise<FleetInstance[]>;
}

/* ───────────── Fan-out ───────────── */

/** Every host of a group having a role: where a broadcast (e.g. a dependency changed) goes. */
export interface BroadcastTarget {
  group: string;
  role: string;
}

export interface InboxAddress {
  hostId: string;
  group: string;
  roles: string[];
}

/** A desired state as it travels: signed by the control plane, too-large states referenced in S3. */
export interface StateEnvelope {
  /** The state itself, or absent when it is too large and `ref` points at it. */
  state?: DesiredHostState;
  ref?: { bucket: string; key: string; sha256: string };
  hostId: string;
  stateVersion: number;
  signedAt: string;
  /** Identifies the signing key (KMS key ARN, or "local:<fingerprint>"). */
  keyId: string;
  /** ECDSA P-256 / SHA-256 signature (DER, base64) over the canonical JSON of everything above. */
  signature: string;
}

export interface StatePublisher {
  /** Creates the host's queue and its subscription (filter: its host id, or its group and roles). Idempotent. */
  ensureInbox(address: InboxAddress): Promise<{ queueUrl: string }>;
  removeInbox(hostId: string): Promise<void>;
  /** Signs and publishes each state to exactly the host it is for. */
  publish(states: readonly DesiredHostState[]): Promise<void>;
  /**
   * Signs and publishes one message to every host of `target.group` having `target.role`. Hosts act on a
   * `messageId` once: a retry of the same broadcast must send the same id.
   */
  broadcast(target: BroadcastTarget, payload: Record<string, unknown>, messageId: string): Promise<void>;
}

/** Signs what the control plane sends (KMS asymmetric key in AWS, a key file locally). */
export interface StateSigner {
  readonly keyId: string;
  sign(message: Buffer): Promise<Buffer>;
}

/** Starts a reconcile run for a group; a run already going for the same trigger is not started twice. */
export interface ReconcileStarter {
  start(request: {
    group: string;
    reason: string;
    rolloutId?: string;
    dedupeKey: string;
  }): Promise<{ executionId: string }>;
}

/* ───────────── The reconcile's own state between steps, and host secrets ───────────── */

/** Where a reconcile run keeps its plan between steps. */
export interface PlanStore {
  save(planId: string, plan: Plan, at: Date): Promise<void>;
  load(planId: string): Promise<Plan>;
  /** Records that a wave converged: the next wave may only be applied after that. */
  markConverged(planId: string, wave: number, at: Date): Promise<void>;
  converged(planId: string): Promise<ReadonlySet<number>>;
}

/** Large bodies kept beside the documents (S3). */
export interface BlobStore {
  put(key: string, body: string): Promise<{ bucket: string; key: string }>;
  get(ref: { bucket: string; key: string }): Promise<string>;
}

/**
 * A host's identity before and after its machine exists: registered with a secret kept where only its machine
 * will read it (prepare), then that machine, and no other, allowed to read it (bind).
 */
export interface HostProvisioner {
  /** Registers the host (once) and stores its secret; returns where its machine finds it (LaunchRequest.secretRef). Idempotent. */
  prepare(host: HostIdentity): Promise<string>;
  /** Lets this instance, and no other, read the host's secret. Idempotent. */
  bind(hostId: string, instance: FleetInstance): Promise<void>;
  /**
   * Ends the host's registration (HostRetired: the ingest refuses its snapshots from then on) and deletes its
   * secret, for a host whose instance is gone for good. Idempotent; a host never registered is no error.
   */
  revoke(hostId: string): Promise<void>;
}

/* ───────────── Alarms: telling people ───────────── */

/** An alarm as it is delivered to the people who must look at it (SNS: e-mail, chat, a pager). */
export interface PublishedAlarm {
  group: string;
  alarmId: string;
  alarm: string;
  detail: string;
  at: string;
  diagnosis?: Diagnosis;
  hostIds?: string[];
  rolloutId?: string;
}

/** Delivers an alarm once it is in the group's stream; the stream, not the delivery, is the record. */
export interface AlarmPublisher {
  publish(alarm: PublishedAlarm): Promise<void>;
}
