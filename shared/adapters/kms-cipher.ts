import { DecryptCommand, EncryptCommand, type KMSClient } from '@aws-sdk/client-kms';
import type { SecretCipher } from '../ports.ts';

const PREFIX = 'v1.kms.';

/** Host secrets encrypted under a KMS key, with the host id as encryption context. */
export class KmsSecretCipher implements SecretCipher {
  constructor(private readonly options: { client: KMSClient; keyId: string }) {}

  async encrypt(plaintext: string, hostId: string): Promise<string> {
    const { CiphertextBlob } = await this.options.client.send(
      new EncryptCommand({
        KeyId: this.options.keyId,
        Plaintext: Buffer.from(plaintext, 'utf8'),
        EncryptionContext: { hostId },
      }),
    );
    if (!CiphertextBlob) throw new Error('KMS returned no ciphertext');
    return `${PREFIX}${Buffer.from(CiphertextBlob).toString('base64')}`;
  }

  async decrypt(ciphertext: string, hostId: string): Promise<string> {
    if (!ciphertext.startsWith(PREFIX)) throw new Error(`secret of host ${hostId} is not a KMS ciphertext`);
    const { Plaintext } = await this.options.client.send(
      new DecryptCommand({
        KeyId: this.options.keyId,
        CiphertextBlob: Buffer.from(ciphertext.slice(PREFIX.length), 'base64'),
        EncryptionContext: { hostId },
      }),
    );
    if (!Plaintext) throw new Error('KMS returned no plaintext');
    return Buffer.from(Plaintext).toString('utf8');
  }
}
