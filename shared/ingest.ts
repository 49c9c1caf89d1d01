import { diff } from './diff.ts';
import type { NewEvent, StateObserved } from './events.ts';
import { statusOf } from './fold.ts';
import { type BandThresholds, splitMetrics, type TrackedState } from './metrics.ts';
import type { HeartbeatUpdate, HostRecord, Rejection } from './ports.ts';
import { Snapshot } from './schemas.ts';
import { clockSkewSeconds, verifySnapshotSignature } from './signing.ts';

export interface IngestConfig {
  /** Largest allowed |signedAt − S3 receipt time|. */
  clockSkewSeconds: number;
  maxSnapshotBytes: number;
  /** An unchanged snapshot rewrites lastSeen only if the stored one is older than this. */
  heartbeatCoalesceSeconds: number;
  bands: BandThresholds;
}

/** What happened to one uploaded object. */
export type Verdict =
  | { kind: 'rejected'; rejection: Rejection }
  /**
   * Seen before, a no-op: the same sequence number as the last accepted one, or (judgeStale) an older one that
   * agrees with what the log says the host was at that sequence.
   */
  | { kind: 'duplicate' }
  /**
   * Below the last accepted sequence number: a redelivery of an accepted snapshot or a replay. Which one only
   * the host's stream can tell, so the caller reads it and asks judgeStale.
   */
  | { kind: 'stale'; lastSeq: number }
  /** Nothing tracked changed; `update` is undefined when lastSeen is recent enough to skip the write. */
  | { kind: 'heartbeat'; update?: HeartbeatUpdate }
  | { kind: 'changed'; event: NewEvent<StateObserved>; next: HostRecord };

const reject = (reason: Rejection['reason'], detail: string): Verdict => ({
  kind: 'rejected',
  rejection: { reason, detail },
});

/** Parses and validates an object's body; the verdict explains a refusal. */
export function parseSnapshot(body: string, keyHostId: string, keySeq: number): Snapshot | Verdict {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch (error) {
    return reject('malformed', `body is not JSON: ${(error as Error).message}`);
  }
  const parsed = Snapshot.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues
      .slice(0, 5)
      .map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`)
      .join('; ');
    return reject('malformed', `body is not a snapshot: ${issues}`);
  }
  const snapshot = parsed.data;
  if (snapshot.hostId !== keyHostId) {
    return reject(
      'foreign',
      `object under snapshots/${keyHostId}/ claims to be from host ${snapshot.hostId}`,
    );
  }
  if (snapshot.seq !== keySeq) {
    return reject('foreign', `object key says sequence ${keySeq} but the snapshot says ${snapshot.seq}`);
  }
  return snapshot;
}

export function isVerdict(value: Snapshot | Verdict): value is Verdict {
  return 'kind' in value;
}

/**
 * Decides what a verified-parseable snapshot does to a host. Pure: the host's secret, the S3 receipt time
 * and "now" come in as arguments.
 */
export function judgeSnapshot(input: {
  snapshot: Snapshot;
  host: HostRecord;
  secret: string;
  /** S3's receipt time (the event's eventTime): trusted, unlike the host's clock or our delivery delay. */
  receivedAt: Date;
  now: Date;
  eventId: string;
  config: IngestConfig;
}): Verdict {
  const { snapshot, host, secret, receivedAt, now, eventId, config } = input;
  if (!verifySnapshotSignature(secret, snapshot)) {
    return reject('bad-signature', `signature does not match host ${host.hostId}'s secret`);
  }
  const { state } = snapshot;
  if (state.group !== host.group || state.hostType !== host.hostType) {
    return reject(
      'foreign',
      `host ${host.hostId} is registered as ${host.group}/${host.hostType} but reports ${state.group}/${state.hostType}`,
    );
  }
  // Before the clock check: an accepted object put again, or its notification delivered again, arrives with
  // a new S3 receipt time long after it was signed, and must stay a no-op rather than turn into clock-skew.
  if (snapshot.seq === host.lastSeq) return { kind: 'duplicate' };
  if (snapshot.seq < host.lastSeq) return { kind: 'stale', lastSeq: host.lastSeq };
  const skew = clockSkewSeconds(snapshot.signedAt, receivedAt);
  if (!(skew <= config.clockSkewSeconds)) {
    return reject(
      'clock-skew',
      `signed at ${snapshot.signedAt}, ${Math.round(skew)} s from its arrival at ${receivedAt.toISOString()} (window ±${config.clockSkewSeconds} s)`,
    );
  }

  const { tracked, metrics } = splitMetrics(state, config.bands);
  const changes = diff(host.observed ?? {}, tracked);
  const lastSeen = receivedAt.toISOString();
  if (changes.length === 0) {
    const fresh =
      host.lastSeen !== undefined &&
      now.getTime() - Date.parse(host.lastSeen) < config.heartbeatCoalesceSeconds * 1000;
    if (fresh) return { kind: 'heartbeat' };
    return {
      kind: 'heartbeat',
      update: { hostId: host.hostId, version: host.version, lastSeq: snapshot.seq, lastSeen, metrics },
    };
  }
  const event: NewEvent<StateObserved> = {
    type: 'StateObserved',
    eventId,
    data: { seq: snapshot.seq, observedAt: snapshot.signedAt, changes, receivedAt: lastSeen, metrics },
  };
  const next: HostRecord = {
    ...host,
    observed: tracked,
    observedAt: snapshot.signedAt,
    lastChangeSeq: snapshot.seq,
    version: host.version + 1,
    lastSeq: snapshot.seq,
    lastSeen,
    metrics,
  };
  // Recorded, but judged as the stream would: a lost host reporting again (a zombie) stays lost.
  return { kind: 'changed', event, next: { ...next, status: statusOf(next) } };
}

/**
 * Decides a stale snapshot (verdict `stale`, already signature-checked): a duplicate when its tracked state
 * equals the host's state as the log holds it at that sequence (`stateAtSeq`: the fold up to the last
 * StateObserved with seq ≤ the snapshot's). That covers the accepted change itself (its StateObserved has that
 * seq), a snapshot accepted as a heartbeat, and one superseded before it was seen: each changes nothing. Any
 * other state is a replay of something the host no longer is, quarantined so it never reaches the history.
 */
export function judgeStale(input: {
  snapshot: Snapshot;
  /** Undefined when the log holds no observation at or below the snapshot's sequence. */
  stateAtSeq: TrackedState | undefined;
  lastSeq: number;
  bands: BandThresholds;
}): Verdict {
  const { snapshot, stateAtSeq, lastSeq, bands } = input;
  const { tracked } = splitMetrics(snapshot.state, bands);
  const changes = diff(stateAtSeq ?? {}, tracked);
  if (changes.length === 0) return { kind: 'duplicate' };
  const paths = changes.slice(0, 3).map((change) => change.path);
  const more = changes.length > paths.length ? ` and ${changes.length - paths.length} more` : '';
  return reject(
    'replayed',
    `sequence ${snapshot.seq} is below the last accepted ${lastSeq} and differs from what the log holds at that sequence (at ${paths.join(', ')}${more}): a replay, or superseded by a newer snapshot`,
  );
}
