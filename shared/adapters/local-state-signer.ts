import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
} from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { StateSigner } from '../groups/ports.ts';

/**
 * Local mode's stand-in for the KMS asymmetric key: an ECDSA P-256 key in a PEM file (0600) under the state
 * folder, made on first use. Signatures are DER, exactly what KMS returns for ECDSA_SHA_256, so agents verify
 * both the same way.
 */
export class LocalStateSigner implements StateSigner {
  readonly keyId: string;
  readonly publicKeyPem: string;

  private constructor(private readonly privateKey: KeyObject) {
    const publicKey = createPublicKey(privateKey);
    this.publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const fingerprint = createHash('sha256')
      .update(publicKey.export({ type: 'spki', format: 'der' }))
      .digest('hex')
      .slice(0, 16);
    this.keyId = `local:${fingerprint}`;
  }

  /** Reads the key file, or creates it (and `<file>.pub` for agents) when it does not exist. */
  static async fromKeyFile(path: string): Promise<LocalStateSigner> {
    try {
      return new LocalStateSigner(createPrivateKey(await readFile(path, 'utf8')));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const signer = new LocalStateSigner(privateKey);
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    await writeFile(path, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), { mode: 0o600 });
    await chmod(path, 0o600);
    await writeFile(`${path}.pub`, signer.publicKeyPem, { mode: 0o644 });
    return signer;
  }

  async sign(message: Buffer): Promise<Buffer> {
    return sign('sha256', message, this.privateKey);
  }
}
