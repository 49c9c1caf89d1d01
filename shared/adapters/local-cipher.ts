import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { AuthError } from '../errors.ts';
import type { SecretCipher } from '../ports.ts';

const PREFIX = 'v1.local.';

/**
 * Local mode's stand-in for KMS: AES-256-GCM under a master key kept in the state folder. The host id is
 * the additional authenticated data, as KMS's encryption context is in AWS, so a ciphertext copied onto
 * another host's record does not decrypt.
 */
export class LocalSecretCipher implements SecretCipher {
  private constructor(private readonly key: Buffer) {}

  static fromKey(key: Buffer): LocalSecretCipher {
    if (key.length !== 32) throw new Error(`master key must be 32 bytes, got ${key.length}`);
    return new LocalSecretCipher(key);
  }

  /** Reads the master key, creating it (mode 0600) on first use. */
  static async fromKeyFile(path: string): Promise<LocalSecretCipher> {
    try {
      return LocalSecretCipher.fromKey(Buffer.from((await readFile(path, 'utf8')).trim(), 'base64'));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      const key = randomBytes(32);
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, `${key.toString('base64')}\n`, { mode: 0o600, flag: 'wx' }).catch(async (e) => {
        // Another process created it first: use theirs.
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      });
      return LocalSecretCipher.fromKey(Buffer.from((await readFile(path, 'utf8')).trim(), 'base64'));
    }
  }

  async encrypt(plaintext: string, hostId: string): Promise<string> {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv).setAAD(Buffer.from(hostId));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return `${PREFIX}${[iv, cipher.getAuthTag(), body].map((part) => part.toString('base64url')).join('.')}`;
  }

  async decrypt(ciphertext: string, hostId: string): Promise<string> {
    const [iv, tag, body] = ciphertext.startsWith(PREFIX)
      ? ciphertext
          .slice(PREFIX.length)
          .split('.')
          .map((part) => Buffer.from(part, 'base64url'))
      : [];
    if (!iv || !tag || !body) throw new AuthError(`secret of host ${hostId} is not a local ciphertext`);
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, iv)
        .setAAD(Buffer.from(hostId))
        .setAuthTag(tag);
      return Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8');
    } catch {
      throw new AuthError(`secret of host ${hostId} does not decrypt under this master key`);
    }
  }
}
