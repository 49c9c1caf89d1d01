import { createHash, createPublicKey } from 'node:crypto';
import { GetPublicKeyCommand, type KMSClient, SignCommand } from '@aws-sdk/client-kms';
import type { StateSigner } from '../groups/ports.ts';

export interface KmsStateSignerOptions {
  client: KMSClient;
  /** The asymmetric key (KeySpec ECC_NIST_P256, KeyUsage SIGN_VERIFY); its ARN becomes the envelopes' keyId. */
  keyArn: string;
  /** Called once per KMS request, so benchmarks can count requests. */
  onRequest?: (operation: 'Sign' | 'GetPublicKey') => void;
}

/**
 * The control plane's signature in AWS: an ECC_NIST_P256 KMS key that never leaves KMS. The SHA-256 is computed
 * here and sent as a DIGEST, so a large state costs 32 bytes on the wire (KMS takes at most 4 KB as a raw
 * message) and the result is the same ECDSA_SHA_256 signature over the message. KMS returns it DER-encoded,
 * exactly what LocalStateSigner produces, so agents verify both with one code path.
 */
export class KmsStateSigner implements StateSigner {
  readonly keyId: string;

  constructor(private readonly options: KmsStateSignerOptions) {
    this.keyId = options.keyArn;
  }

  async sign(message: Buffer): Promise<Buffer> {
    const digest = createHash('sha256').update(message).digest();
    this.options.onRequest?.('Sign');
    const response = await this.options.client.send(
      new SignCommand({
        KeyId: this.options.keyArn,
        Message: digest,
        MessageType: 'DIGEST',
        SigningAlgorithm: 'ECDSA_SHA_256',
      }),
    );
    if (!response.Signature || response.Signature.length === 0) {
      throw new Error(`KMS returned no signature for key ${this.options.keyArn}`);
    }
    return Buffer.from(response.Signature);
  }

  /** The public half as PEM, what agents are configured with to verify states. */
  async publicKeyPem(): Promise<string> {
    this.options.onRequest?.('GetPublicKey');
    const response = await this.options.client.send(new GetPublicKeyCommand({ KeyId: this.options.keyArn }));
    if (!response.PublicKey) throw new Error(`KMS returned no public key for ${this.options.keyArn}`);
    return createPublicKey({ key: Buffer.from(response.PublicKey), format: 'der', type: 'spki' })
      .export({ type: 'spki', format: 'pem' })
      .toString();
  }
}
