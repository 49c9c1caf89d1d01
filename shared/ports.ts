import type { FleetEvent, HostEvent, NewEvent, RecordedEvent } from './events.ts';
import type { HostState } from './fold.ts';
import type { Metrics } from './metrics.ts';
import type { HostStatus } from './schemas.ts';

/* Ports: the domain and the handlers talk to these; adapters in shared/adapters implement them. */

export interface ReadEventsOptions {
  /** Lowest version to return (inclusive); default 1. */
  fromVersion?: number;
  /** Highest version to return (inclusive); default: the end of the stream. */
  toVersion?: number;
  direction?: 'forward' | 'backward';
  /** Page size; default 100, at most 1000. */
  limit?: number;
  /** Opaque cursor from a previous page's `next`. */
  cursor?: string;
}

export interface EventPage<E extends FleetEvent = HostEvent> {
  events: RecordedEvent<E>[];
  /** Present when there is more to read. */
  next?: string;
}

/**
 * Append-only streams with optimistic concurrency: one partition per stream, version as sort key. The stream's
 * prefix decides its event type (`host#` → HostEvent, `group#` → GroupEvent): callers name it as `E`.
 */
export interface EventStore {
  /**
   * Appends `events` as versions expectedVersion+1, +2, …; throws ConflictError if any of those versions
   * exists already (somebody else appended first).
   */
  append<E extends FleetEvent = HostEvent>(
    stream: string,
    expectedVersion: number,
    events: readonly NewEvent<E>[],
    recordedAt: Date,
  ): Promise<number>;
  read<E extends FleetEvent = HostEvent>(stream: string, options?: ReadEventsOptions): Promise<EventPage<E>>;
  /** The stream's current version (0 when empty). */
  currentVersion(stream: string): Promise<number>;
}

/** The host projection as stored: the fold of the host's stream plus metrics, liveness and its secret. */
export interface HostRecord extends HostState {
  status: HostStatus;
  /** Primary role (roles[0]): the key of the role index. */
  role: string;
  /** Highest snapshot sequence number accepted (changed or heartbeat). */
  lastSeq: number;
  lastSeen?: string;
  metrics?: Metrics;
  /** The host's HMAC secret, encrypted (KMS in AWS, the local master key in local mode). */
  secretCiphertext: string;
}

export interface HostFilter {
  role?: string;
  status?: HostStatus;
  group?: string;
  /** Hosts running this service … */
  service?: string;
  /** … at this version (requires `service`). */
  version?: string;
}

export interface HostPage {
  hosts: HostRecord[];
  next?: string;
}

export interface HeartbeatUpdate {
  hostId: string;
  /** The projection version the heartbeat was judged against: the write fails if the state moved on. */
  version: number;
  lastSeq: number;
  lastSeen: string;
  metrics: Metrics;
}

export interface HostStore {
  /** Strongly consistent read. */
  get(hostId: string): Promise<HostRecord | undefined>;
  /** Creates a new host; ConflictError if the id is taken. */
  create(record: HostRecord): Promise<void>;
  /**
   * Replaces the projection unless the stored one is newer (higher version, or same version and a higher or
   * equal lastSeq): returns false when it was newer, so replays and races converge on the newest.
   */
  save(record: HostRecord): Promise<boolean>;
  /** Heartbeat: moves lastSeq/lastSeen/metrics forward; false when the version moved or lastSeq is not below. */
  touch(update: HeartbeatUpdate): Promise<boolean>;
  list(filter: HostFilter, limit: number, cursor?: string): Promise<HostPage>;
}

export type RejectReason =
  | 'bad-key'
  | 'oversized'
  | 'malformed'
  | 'unknown-host'
  | 'foreign'
  | 'bad-signature'
  | 'clock-skew'
  | 'replayed';

export interface Rejection {
  reason: RejectReason;
  /** A sentence an operator can act on. */
  detail: string;
}

export interface StoredObject {
  body: string;
  size: number;
}

/** Where snapshots are uploaded and refused ones are quarantined. */
export interface SnapshotStore {
  /** Reads an object; TooLargeError past maxBytes (checked before the body is read where possible). */
  read(key: string, maxBytes: number): Promise<StoredObject>;
  /** Moves the object to rejected/{key} and writes rejected/{key}.reason.json beside it. */
  quarantine(key: string, rejection: Rejection & { rejectedAt: string }): Promise<void>;
}

/** Encrypts host secrets at rest; the host id is bound in as context so a ciphertext can't be moved. */
export interface SecretCipher {
  encrypt(plaintext: string, hostId: string): Promise<string>;
  decrypt(ciphertext: string, hostId: string): Promise<string>;
}
