/**
 * Messages for every host of a group having a role (e.g. "a service you depend on changed"), as opposed to
 * a host's own desired state. Signed like states but under another context line, so neither can be replayed
 * as the other; verified against the receiving host's own group and roles.
 *
 * A state carries its own replay guard (its version only moves forward); a broadcast has none, so it carries a
 * `messageId` the host remembers once acted on, and a `signedAt` it must be fresh by: the host need only
 * remember the ids of one window, as anything older is refused as stale anyway.
 */
import { createHash, createPublicKey, type KeyObject, verify } from 'node:crypto';
import { canonicalJson } from '../canonical.ts';
import type { BroadcastTarget, StateSigner } from './ports.ts';

const BROADCAST_CONTEXT = 'fleetfold-broadcast-v2\n';

/**
 * How far a broadcast's signedAt may be from the host's clock, either way: covers the clock skew between the
 * control plane and hosts and SQS's delivery delay, while a captured message stops being replayable soon.
 */
export const BROADCAST_WINDOW_MS = 15 * 60 * 1000;

export type { BroadcastTarget } from './ports.ts';

export interface BroadcastEnvelope extends BroadcastTarget {
  /** What the hosts are told; e.g. { kind: 'notify', service, reason }. */
  payload: Record<string, unknown>;
  /** Unique per message, and the same when a retried step sends it again (see broadcastMessageId). */
  messageId: string;
  signedAt: string;
  keyId: string;
  /** ECDSA P-256 / SHA-256 (DER, base64) over the context line and the canonical JSON of the rest. */
  signature: string;
}

export function broadcastMessage(envelope: Omit<BroadcastEnvelope, 'signature'>): Buffer {
  const { group, role, payload, messageId, signedAt, keyId } = envelope;
  return Buffer.from(BROADCAST_CONTEXT + canonicalJson({ group, role, payload, messageId, signedAt, keyId }));
}

/**
 * The id of a broadcast a reconcile wave sends: derived from what sends it (plan, wave, the action within it)
 * and to whom, never random, so a retried wave sends the same id again and a host that acted on the first
 * delivery ignores the second.
 */
export function broadcastMessageId(source: {
  planId: string;
  wave: number;
  action: number;
  target: BroadcastTarget;
}): string {
  const { planId, wave, action, target } = source;
  const digest = createHash('sha256')
    .update(canonicalJson({ planId, wave, action, group: target.group, role: target.role }))
    .digest('hex');
  return `b-${digest.slice(0, 32)}`;
}

export async function signBroadcast(
  signer: StateSigner,
  target: BroadcastTarget,
  payload: Record<string, unknown>,
  signedAt: Date,
  messageId: string,
): Promise<BroadcastEnvelope> {
  const unsigned = {
    group: target.group,
    role: target.role,
    payload,
    messageId,
    signedAt: signedAt.toISOString(),
    keyId: signer.keyId,
  };
  const signature = await signer.sign(broadcastMessage(unsigned));
  return { ...unsigned, signature: signature.toString('base64') };
}

export type BroadcastCheck =
  | { ok: true; envelope: BroadcastEnvelope }
  | { ok: false; reason: 'malformed' | 'bad-signature' | 'not-for-me' | 'stale'; detail: string };

/**
 * Well-formed, signed by the control plane, for this host's group and one of its roles, and signed within
 * `windowMs` of `now` (the host's clock). Whether its messageId was already acted on is the host's own check
 * (it knows what it acted on).
 */
export function checkBroadcast(
  raw: unknown,
  publicKey: KeyObject | string,
  host: { group: string; roles: readonly string[] },
  now: Date,
  windowMs: number = BROADCAST_WINDOW_MS,
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
  const signedAt = Date.parse(raw.signedAt);
  const skewMs = Math.abs(now.getTime() - signedAt);
  // NaN (an unreadable date) fails the comparison too: a broadcast of unknown age is not fresh.
  if (!(skewMs <= windowMs)) {
    return {
      ok: false,
      reason: 'stale',
      detail: `signed at ${raw.signedAt}, ${Math.round(skewMs / 1000)} s from ${now.toISOString()} (window ±${Math.round(windowMs / 1000)} s)`,
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
    typeof v.messageId === 'string' &&
    v.messageId.length > 0 &&
    v.messageId.length <= 128 &&
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
