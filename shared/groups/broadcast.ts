/**
 * Messages for every host of a group having a role (e.g. "a service you depend on changed"), as opposed to
 * a host's own desired state. Signed like states but under another context line, so neither can be replayed
 * as the other; verified against the receiving host's own group and roles.
 */
import { createPublicKey, type KeyObject, verify } from 'node:crypto';
import { canonicalJson } from '../canonical.ts';
import type { StateSigner } from './ports.ts';

const BROADCAST_CONTEXT = 'fleetfold-broadcast-v1\n';

export interface BroadcastTarget {
  group: string;
  role: string;
}

export interface BroadcastEnvelope extends BroadcastTarget {
  /** What the hosts are told; e.g. { kind: 'notify', service, reason }. */
  payload: Record<string, unknown>;
  signedAt: string;
  keyId: string;
  /** ECDSA P-256 / SHA-256 (DER, base64) over the context line and the canonical JSON of the rest. */
  signature: string;
}

export function broadcastMessage(envelope: Omit<BroadcastEnvelope, 'signature'>): Buffer {
  const { group, role, payload, signedAt, keyId } = envelope;
  return Buffer.from(BROADCAST_CONTEXT + canonicalJson({ group, role, payload, signedAt, keyId }));
}

export async function signBroadcast(
  signer: StateSigner,
  target: BroadcastTarget,
  payload: Record<string, unknown>,
  signedAt: Date,
): Promise<BroadcastEnvelope> {
  const unsigned = {
    group: target.group,
    role: target.role,
    payload,
    signedAt: signedAt.toISOString(),
    keyId: signer.keyId,
  };
  const signature = await signer.sign(broadcastMessage(unsigned));
  return { ...unsigned, signature: signature.toString('base64') };
}

export type BroadcastCheck =
  | { ok: true; envelope: BroadcastEnvelope }
  | { ok: false; reason: 'malformed' | 'bad-signature' | 'not-for-me'; detail: string };

/** Well-formed, signed by the control plane, and for this host's group and one of its roles. */
export function checkBroadcast(
  raw: unknown,
  publicKey: KeyObject | string,
  host: { group: string; roles: readonly string[] },
): BroadcastCheck {
  if (!isBroadcastShaped(raw)) return { ok: false, reason: 'malformed', detail: 'not a broadcast' };
  const { signature, ...unsigned } = raw;
  const key = typeof publicKey === 'string' ? createPublicKey(publicKey) : publicKey;
  let valid = false;
  try {
    valid = verify('sha256', broadcastMessage(unsigned), key, Buffer.from(signature, 'base64'));
  } catch {
    valid = false;
  }
  if (!valid) {
    return {
      ok: false,
      reason: 'bad-signature',
      detail: 'signature does not verify with the control plane key',
    };
  }
  if (raw.group !== host.group || !host.roles.includes(raw.role)) {
    return {
      ok: false,
      reason: 'not-for-me',
      detail: `addressed to ${raw.role} in ${raw.group}, this host is ${host.roles.join('/')} in ${host.group}`,
    };
  }
  return { ok: true, envelope: raw };
}

function isBroadcastShaped(value: unknown): value is BroadcastEnvelope {
  if (!value || typeof value !== 'object') return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.group === 'string' &&
    typeof v.role === 'string' &&
    typeof v.signedAt === 'string' &&
    typeof v.keyId === 'string' &&
    typeof v.signature === 'string' &&
    typeof v.payload === 'object' &&
    v.payload !== null &&
    !Array.isArray(v.payload) &&
    // A state envelope names its host: never mistake one for a broadcast.
    v.hostId === undefined
  );
}
