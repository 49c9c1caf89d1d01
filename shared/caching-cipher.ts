import type { SecretCipher } from './ports.ts';

/**
 * Decrypting a host's secret for every snapshot would cost a KMS request each; a warm function keeps the
 * plaintext of recently seen hosts. Keyed by ciphertext, so a re-registered host never hits a stale entry.
 */
export class CachingCipher implements SecretCipher {
  private readonly cache = new Map<string, string>();

  constructor(
    private readonly inner: SecretCipher,
    private readonly maxEntries = 10_000,
  ) {}

  encrypt(plaintext: string, hostId: string): Promise<string> {
    return this.inner.encrypt(plaintext, hostId);
  }

  async decrypt(ciphertext: string, hostId: string): Promise<string> {
    const key = `${hostId}\n${ciphertext}`;
    const hit = this.cache.get(key);
    if (hit !== undefined) {
      // Re-insert to keep the Map's iteration order least-recently-used first.
      this.cache.delete(key);
      this.cache.set(key, hit);
      return hit;
    }
    const plaintext = await this.inner.decrypt(ciphertext, hostId);
    this.cache.set(key, plaintext);
    if (this.cache.size > this.maxEntries) this.cache.delete(this.cache.keys().next().value as string);
    return plaintext;
  }
}
