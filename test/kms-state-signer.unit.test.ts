import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { GetPublicKeyCommand, KMSClient, SignCommand } from '@aws-sdk/client-kms';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { KmsStateSigner } from '../shared/adapters/kms-state-signer.ts';
import type { DesiredHostState } from '../shared/groups/model.ts';
import { checkEnvelope, envelopeMessage, signEnvelope } from '../shared/state-envelope.ts';

const keyArn = 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const kms = mockClient(KMSClient);
// The key KMS would hold: ECC_NIST_P256.
const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();

afterEach(() => {
  kms.reset();
});

const state: DesiredHostState = {
  hostId: 'cr-1',
  group: 'demo',
  hostType: 'call-router',
  stateVersion: 5,
  services: { 'call-router': { version: '2.1.0' } },
  config: {},
  mode: 'running',
};

/**
 * KMS answers a DIGEST request with an ECDSA_SHA_256 DER signature of the message whose digest it got. Node
 * cannot sign a bare digest, so the stand-in signs the message that it checks the digest against.
 */
function kmsSigning(expectedMessage: () => Buffer) {
  kms.on(SignCommand).callsFake((input) => {
    const message = expectedMessage();
    const digest = createHash('sha256').update(message).digest();
    if (!Buffer.from(input.Message).equals(digest)) throw new Error('KMS got a digest of something else');
    return {
      KeyId: keyArn,
      Signature: sign('sha256', message, privateKey),
      SigningAlgorithm: 'ECDSA_SHA_256',
    };
  });
}

describe('KmsStateSigner', () => {
  it('asks KMS to sign the SHA-256 digest with ECDSA_SHA_256 under its key, and names the key ARN', async () => {
    const message = Buffer.from('fleetfold-state-v1\n{"a":1}');
    kmsSigning(() => message);
    const signer = new KmsStateSigner({ client: new KMSClient({ region: 'eu-west-1' }), keyArn });

    await signer.sign(message);

    expect(signer.keyId).toBe(keyArn);
    const [call] = kms.commandCalls(SignCommand);
    expect(call?.args[0].input).toMatchObject({
      KeyId: keyArn,
      MessageType: 'DIGEST',
      SigningAlgorithm: 'ECDSA_SHA_256',
    });
    expect(Buffer.from(call?.args[0].input.Message as Uint8Array)).toEqual(
      createHash('sha256').update(message).digest(),
    );
  });

  it('produces envelopes agents verify with the KMS public key', async () => {
    const operations: string[] = [];
    const signer = new KmsStateSigner({
      client: new KMSClient({ region: 'eu-west-1' }),
      keyArn,
      onRequest: (op) => operations.push(op),
    });
    const at = new Date('2026-11-28T01:00:00Z');
    kmsSigning(() =>
      envelopeMessage({ state, hostId: 'cr-1', stateVersion: 5, signedAt: at.toISOString(), keyId: keyArn }),
    );

    const envelope = await signEnvelope(signer, { state }, at);

    expect(checkEnvelope(JSON.parse(JSON.stringify(envelope)), publicKeyPem, 'cr-1')).toMatchObject({
      ok: true,
      envelope: { keyId: keyArn },
    });
    expect(checkEnvelope({ ...envelope, stateVersion: 6 }, publicKeyPem, 'cr-1')).toMatchObject({
      ok: false,
    });
    expect(operations).toEqual(['Sign']);
  });

  it('fails when KMS returns no signature, and passes KMS errors on', async () => {
    const signer = new KmsStateSigner({ client: new KMSClient({ region: 'eu-west-1' }), keyArn });
    kms.on(SignCommand).resolves({ KeyId: keyArn });
    await expect(signer.sign(Buffer.from('x'))).rejects.toThrow(/no signature/);
    kms.reset();
    kms.on(SignCommand).rejects(Object.assign(new Error('key disabled'), { name: 'DisabledException' }));
    await expect(signer.sign(Buffer.from('x'))).rejects.toThrow('key disabled');
  });

  it('hands out the public key as PEM for agents', async () => {
    kms.on(GetPublicKeyCommand).resolves({
      KeyId: keyArn,
      PublicKey: publicKey.export({ type: 'spki', format: 'der' }),
    });
    const signer = new KmsStateSigner({ client: new KMSClient({ region: 'eu-west-1' }), keyArn });
    expect(await signer.publicKeyPem()).toBe(publicKeyPem);
  });
});
