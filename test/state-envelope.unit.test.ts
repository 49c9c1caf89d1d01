import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalStateSigner } from '../shared/adapters/local-state-signer.ts';
import {
  BROADCAST_WINDOW_MS,
  broadcastMessageId,
  checkBroadcast,
  signBroadcast,
} from '../shared/groups/broadcast.ts';
import type { DesiredHostState } from '../shared/groups/model.ts';
import type { StateEnvelope } from '../shared/groups/ports.ts';
import { checkEnvelope, envelopeMessage, sha256Hex, signEnvelope } from '../shared/state-envelope.ts';

let dir: string;
let signer: LocalStateSigner;
let stranger: LocalStateSigner;
const at = new Date('2026-11-28T01:00:00Z');

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetfold-envelope-'));
  signer = await LocalStateSigner.fromKeyFile(join(dir, 'control.pem'));
  stranger = await LocalStateSigner.fromKeyFile(join(dir, 'stranger.pem'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function state(overrides: Partial<DesiredHostState> = {}): DesiredHostState {
  return {
    hostId: 'cr-1',
    group: 'demo',
    hostType: 'call-router',
    stateVersion: 3,
    services: { 'call-router': { version: '1.5.0', config: { 'sip.port': '5060' } } },
    config: { region: 'eu-west-1' },
    mode: 'running',
    ...overrides,
  };
}

/** What travels: JSON text, parsed by the receiving agent. */
function overTheWire(envelope: StateEnvelope): unknown {
  return JSON.parse(JSON.stringify(envelope));
}

describe('LocalStateSigner', () => {
  it('keeps its key across restarts and writes the public key beside it for agents', async () => {
    const again = await LocalStateSigner.fromKeyFile(join(dir, 'control.pem'));
    expect(again.keyId).toBe(signer.keyId);
    expect(again.keyId).toMatch(/^local:[0-9a-f]{16}$/);
    expect(await readFile(join(dir, 'control.pem.pub'), 'utf8')).toBe(signer.publicKeyPem);
    expect((await stat(join(dir, 'control.pem'))).mode & 0o777).toBe(0o600);
  });
});

describe('state envelopes', () => {
  it('verify with the control plane public key, for the host they name', async () => {
    const envelope = await signEnvelope(signer, { state: state() }, at);
    const check = checkEnvelope(overTheWire(envelope), signer.publicKeyPem, 'cr-1');
    expect(check).toEqual({ ok: true, envelope: overTheWire(envelope) });
    expect(envelope).toMatchObject({ hostId: 'cr-1', stateVersion: 3, keyId: signer.keyId });
  });

  it('verify whatever order the keys arrive in', async () => {
    const envelope = await signEnvelope(signer, { state: state() }, at);
    const reversed = Object.fromEntries(Object.entries(overTheWire(envelope) as object).reverse());
    expect(checkEnvelope(reversed, signer.publicKeyPem, 'cr-1').ok).toBe(true);
  });

  it('verify a reference to a state stored elsewhere', async () => {
    const body = JSON.stringify(state());
    const ref = { bucket: 'b', key: 'states/cr-1/3.json', sha256: sha256Hex(body) };
    const envelope = await signEnvelope(signer, { ref, hostId: 'cr-1', stateVersion: 3 }, at);
    expect(checkEnvelope(overTheWire(envelope), signer.publicKeyPem, 'cr-1')).toMatchObject({
      ok: true,
      envelope: { ref },
    });
  });

  it('rejects a tampered state, version, time, key id or reference', async () => {
    const envelope = overTheWire(await signEnvelope(signer, { state: state() }, at)) as StateEnvelope;
    const tampered: unknown[] = [
      { ...envelope, state: { ...envelope.state, mode: 'stopped' } },
      { ...envelope, state: state({ services: { 'call-router': { version: '6.6.6' } } }) },
      { ...envelope, stateVersion: 4, state: { ...envelope.state, stateVersion: 4 } },
      { ...envelope, signedAt: '2026-11-28T02:00:00.000Z' },
      { ...envelope, keyId: stranger.keyId },
      { ...envelope, ref: { bucket: 'b', key: 'k', sha256: sha256Hex('evil') } },
    ];
    for (const raw of tampered) {
      expect(checkEnvelope(raw, signer.publicKeyPem, 'cr-1')).toMatchObject({
        ok: false,
        reason: 'bad-signature',
      });
    }
  });

  it('rejects a tampered referenced sha256', async () => {
    const ref = { bucket: 'b', key: 'states/cr-1/3.json', sha256: sha256Hex('{}') };
    const envelope = await signEnvelope(signer, { ref, hostId: 'cr-1', stateVersion: 3 }, at);
    const raw = { ...envelope, ref: { ...ref, sha256: sha256Hex('{"mode":"stopped"}') } };
    expect(checkEnvelope(raw, signer.publicKeyPem, 'cr-1')).toMatchObject({
      ok: false,
      reason: 'bad-signature',
    });
  });

  it('rejects any flipped bit of the signature', async () => {
    const envelope = await signEnvelope(signer, { state: state() }, at);
    const signature = Buffer.from(envelope.signature, 'base64');
    fc.assert(
      fc.property(fc.nat({ max: signature.length * 8 - 1 }), (bit) => {
        const flipped = Buffer.from(signature);
        flipped[bit >> 3] = (flipped[bit >> 3] as number) ^ (1 << (bit & 7));
        const raw = { ...envelope, signature: flipped.toString('base64') };
        return !checkEnvelope(raw, signer.publicKeyPem, 'cr-1').ok;
      }),
      { numRuns: 64 },
    );
  });

  it('rejects a signature made with another key, even one claiming the control plane key id', async () => {
    const forged = await signEnvelope(
      { keyId: signer.keyId, sign: (m) => stranger.sign(m) },
      { state: state() },
      at,
    );
    expect(checkEnvelope(forged, signer.publicKeyPem, 'cr-1')).toMatchObject({
      ok: false,
      reason: 'bad-signature',
    });
  });

  it('rejects a genuine envelope addressed to another host', async () => {
    const envelope = await signEnvelope(signer, { state: state({ hostId: 'cr-2' }) }, at);
    expect(checkEnvelope(overTheWire(envelope), signer.publicKeyPem, 'cr-1')).toMatchObject({
      ok: false,
      reason: 'not-for-me',
    });
  });

  it('rejects a signed envelope whose state names another host or version than the envelope', async () => {
    const unsigned = {
      state: state({ stateVersion: 2 }),
      hostId: 'cr-1',
      stateVersion: 3,
      signedAt: at.toISOString(),
      keyId: signer.keyId,
    };
    const signature = (await signer.sign(envelopeMessage(unsigned))).toString('base64');
    expect(checkEnvelope({ ...unsigned, signature }, signer.publicKeyPem, 'cr-1')).toMatchObject({
      ok: false,
      reason: 'inconsistent',
    });
    const otherHost = { ...unsigned, state: state({ hostId: 'cr-9', stateVersion: 3 }) };
    const otherSignature = (await signer.sign(envelopeMessage(otherHost))).toString('base64');
    expect(
      checkEnvelope({ ...otherHost, signature: otherSignature }, signer.publicKeyPem, 'cr-1'),
    ).toMatchObject({ ok: false, reason: 'inconsistent' });
  });

  it('rejects what is not an envelope, or carries neither state nor reference', async () => {
    for (const raw of [null, 'x', 42, {}, { hostId: 'cr-1', stateVersion: 1.5 }]) {
      expect(checkEnvelope(raw, signer.publicKeyPem, 'cr-1')).toMatchObject({
        ok: false,
        reason: 'malformed',
      });
    }
    const unsigned = { hostId: 'cr-1', stateVersion: 3, signedAt: at.toISOString(), keyId: signer.keyId };
    const signature = (await signer.sign(envelopeMessage(unsigned))).toString('base64');
    expect(checkEnvelope({ ...unsigned, signature }, signer.publicKeyPem, 'cr-1')).toMatchObject({
      ok: false,
      reason: 'malformed',
    });
  });
});

describe('broadcast envelopes', () => {
  const host = { group: 'demo', roles: ['call-router', 'lb'] };
  const sign = (by: LocalStateSigner, role: string, messageId = 'b-1', signedAt = at) =>
    signBroadcast(by, { group: 'demo', role }, { kind: 'notify' }, signedAt, messageId);

  it('verify for a host of the group having the role, signed within the window', async () => {
    const envelope = await sign(signer, 'lb');
    expect(envelope.messageId).toBe('b-1');
    expect(checkBroadcast(JSON.parse(JSON.stringify(envelope)), signer.publicKeyPem, host, at).ok).toBe(true);
    const later = new Date(at.getTime() + BROADCAST_WINDOW_MS);
    expect(checkBroadcast(envelope, signer.publicKeyPem, host, later).ok).toBe(true);
  });

  it('rejects one for another group or role, tampered, or signed with another key', async () => {
    const other = await sign(signer, 'db');
    expect(checkBroadcast(other, signer.publicKeyPem, host, at)).toMatchObject({ reason: 'not-for-me' });
    const good = await sign(signer, 'lb');
    expect(checkBroadcast({ ...good, role: 'call-router' }, signer.publicKeyPem, host, at)).toMatchObject({
      reason: 'bad-signature',
    });
    expect(checkBroadcast({ ...good, messageId: 'b-2' }, signer.publicKeyPem, host, at)).toMatchObject({
      reason: 'bad-signature',
    });
    const forged = await sign(stranger, 'lb');
    expect(checkBroadcast(forged, signer.publicKeyPem, host, at)).toMatchObject({ reason: 'bad-signature' });
  });

  it('rejects one signed outside the window either way, or without a message id', async () => {
    const envelope = await sign(signer, 'lb');
    const late = new Date(at.getTime() + BROADCAST_WINDOW_MS + 1000);
    const early = new Date(at.getTime() - BROADCAST_WINDOW_MS - 1000);
    expect(checkBroadcast(envelope, signer.publicKeyPem, host, late)).toMatchObject({ reason: 'stale' });
    expect(checkBroadcast(envelope, signer.publicKeyPem, host, early)).toMatchObject({ reason: 'stale' });
    const { messageId: _, ...withoutId } = envelope;
    expect(checkBroadcast(withoutId, signer.publicKeyPem, host, at)).toMatchObject({ reason: 'malformed' });
  });

  it('derives the same message id for the same plan, wave, action and target, another for any other', () => {
    const source = { planId: 'demo.run', wave: 1, action: 3, target: { group: 'demo', role: 'lb' } };
    const id = broadcastMessageId(source);
    expect(broadcastMessageId({ ...source })).toBe(id);
    for (const other of [
      { ...source, planId: 'demo.run.pass-2' },
      { ...source, wave: 2 },
      { ...source, action: 4 },
      { ...source, target: { group: 'demo', role: 'db' } },
      { ...source, target: { group: 'other', role: 'lb' } },
    ])
      expect(broadcastMessageId(other)).not.toBe(id);
  });

  it('cannot pass for a state envelope, nor a state envelope for a broadcast', async () => {
    const broadcast = await sign(signer, 'lb');
    expect(
      checkEnvelope({ ...broadcast, hostId: 'cr-1', stateVersion: 1 }, signer.publicKeyPem, 'cr-1').ok,
    ).toBe(false);
    const envelope = await signEnvelope(signer, { state: state() }, at);
    expect(checkBroadcast(envelope, signer.publicKeyPem, host, at).ok).toBe(false);
  });
});
