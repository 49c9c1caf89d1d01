import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { canonicalJson } from './canonical.ts';
import { SIGNATURE_PREFIX, type Snapshot, type UnsignedSnapshot } from './schemas.ts';

/** Domain separation: a signature over a snapshot can never be mistaken for one over anything else. */
const SNAPSHOT_CONTEXT = 'fleetfold-snapshot-v1\n';

export function newHostSecret(): string {
  return randomBytes(32).toString('base64url');
}

function snapshotMac(secret: string, snapshot: UnsignedSnapshot): Buffer {
  const { hostId, seq, signedAt, state } = snapshot;
  return createHmac('sha256', secret)
    .update(SNAPSHOT_CONTEXT)
    .update(canonicalJson({ hostId, seq, signedAt, state }))
    .digest();
}

export function signSnapshot(secret: string, snapshot: UnsignedSnapshot): Snapshot {
  return { ...snapshot, signature: `${SIGNATURE_PREFIX}${snapshotMac(secret, snapshot).toString('hex')}` };
}

export function verifySnapshotSignature(secret: string, snapshot: Snapshot): boolean {
  const given = Buffer.from(snapshot.signature.slice(SIGNATURE_PREFIX.length), 'hex');
  const expected = snapshotMac(secret, snapshot);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** Seconds between the host's signing time and a trusted reference (S3's receipt time). */
export function clockSkewSeconds(signedAt: string, reference: Date): number {
  return Math.abs(Date.parse(signedAt) - reference.getTime()) / 1000;
}
