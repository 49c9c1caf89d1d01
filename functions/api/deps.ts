import type { EventStore, HostStore, SecretCipher } from '../../shared/ports.ts';

/** Everything the api handler needs from the outside world; tests and local mode pass their own. */
export interface ApiDeps {
  hosts: HostStore;
  events: EventStore;
  cipher: SecretCipher;
  now: () => Date;
  /** A fresh host secret (shared/signing.ts newHostSecret in production). */
  newSecret: () => string;
  /** A random suffix for generated host ids: lowercase letters and digits. */
  newId: () => string;
}
