import { createHash, createPublicKey, type KeyObject, verify } from 'node:crypto';
import { canonicalJson } from './canonical.ts';
import type { DesiredHostState } from './groups/model.ts';
import type { StateEnvelope, StateSigner } from './groups/ports.ts';

/** Domain separation: a control-plane signature over a state can never pass for one over anything else. */
const STATE_CONTEXT = 'fleetfold-state-v1\n';

export type UnsignedEnvelope = Omit<StateEnvelope, 'signature'>;

/** The exact bytes signed and verified: context line, then the canonical JSON of everything but the signature. */
export function envelopeMessage(envelope: UnsignedEnvelope): Buffer {
  const { state, ref, hostId, stateVersion, signedAt, keyId } = envelope;
  return Buffer.from(STATE_CONTEXT + canonicalJson({ state, ref, hostId, stateVersion, signedAt, keyId }));
}

export function sha256Hex(body: string | Buffer): string {
  return createHash('sha256').update(body).digest('hex');
}

/**
 * Signs a desired state for the host it is for. Pass `ref` (with the sha256 of the stored JSON) instead of
 * the state when the state is too large to travel in a message.
 */
export async function signEnvelope(
  signer: StateSigner,
  content:
    | { state: DesiredHostState }
    | { ref: NonNullable<StateEnvelope['ref']>; hostId: string; stateVersion: number },
  signedAt: Date,
): Promise<StateEnvelope> {
  const unsigned: UnsignedEnvelope =
    'state' in content
      ? {
          state: content.state,
          hostId: content.state.hostId,
          stateVersion: content.state.stateVersion,
          signedAt: signedAt.toISOString(),
          keyId: signer.keyId,
        }
      : {
          ref: content.ref,
          hostId: content.hostId,
          stateVersion: content.stateVersion,
          signedAt: signedAt.toISOString(),
          keyId: signer.keyId,
        };
  const signature = await signer.sign(envelopeMessage(unsigned));
  return { ...unsigned, signature: signature.toString('base64') };
}

export type EnvelopeCheck =
  | { ok: true; envelope: StateEnvelope }
  | { ok: false; reason: 'malformed' | 'bad-signature' | 'not-for-me' | 'inconsistent'; detail: string };

/**
 * What an agent checks before it acts on a message: well-formed, signed by the control plane's key (ECDSA
 * P-256 / SHA-256, DER), addressed to this host, and the inline state agreeing with the envelope. Whether the
 * version moves forward is the agent's own check (it knows what it applied).
 */
export function checkEnvelope(raw: unknown, publicKey: KeyObject | string, hostId: string): EnvelopeCheck {
  if (!isEnvelopeShaped(raw)) {
    return { ok: false, reason: 'malformed', detail: 'not a state envelope' };
  }
  const { signature, ...unsigned } = raw;
  const key = typeof publicKey === 'string' ? createPublicKey(publicKey) : publicKey;
  let valid = false;
  try {
    valid = verify('sha256', envelopeMessage(unsigned), key, Buffer.from(signature, 'base64'));
  } catch {
    valid = false;
  }
  if (!valid)
    return {
      ok: false,
      reason: 'bad-signature',
      detail: 'signature does not verify with the control plane key',
    };
  if (raw.hostId !== hostId) {
    return { ok: false, reason: 'not-for-me', detail: `addressed to ${raw.hostId}, this is ${hostId}` };
  }
  if (raw.state && (raw.state.hostId !== raw.hostId || raw.state.stateVersion !== raw.stateVersion)) {
    return {
      ok: false,
      reason: 'inconsistent',
      detail: 'the state names another host or version than its envelope',
    };
  }
  if (!raw.state && !raw.ref)
    return { ok: false, reason: 'malformed', detail: 'neither a state nor a reference' };
  return { ok: true, envelope: raw };
}

function isEnvelopeShaped(value: unknown): value is StateEnvelope {
  if (!value || typeof value !== 'object') return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.hostId === 'string' &&
    typeof v.stateVersion === 'number' &&
    Number.isSafeInteger(v.stateVersion) &&
    typeof v.signedAt === 'string' &&
    typeof v.keyId === 'string' &&
    typeof v.signature === 'string' &&
    (v.state === undefined || (typeof v.state === 'object' && v.state !== null)) &&
    (v.ref === undefined || (typeof v.ref === 'object' && v.ref !== null))
  );
}
