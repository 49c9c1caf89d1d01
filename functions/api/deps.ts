import type { DocumentStore, ReconcileStarter } from '../../shared/groups/ports.ts';
import type { EventStore, HostStore, SecretCipher } from '../../shared/ports.ts';

/** Everything the api handler needs from the outside world; tests and local mode pass their own. */
export interface ApiDeps {
  hosts: HostStore;
  events: EventStore;
  /** Groups and rollouts (and, for the reconcile, desired states and plans). */
  documents: DocumentStore;
  /** Starts the reconcile loop for a group (Step Functions in AWS, in-process locally). */
  reconcile: ReconcileStarter;
  cipher: SecretCipher;
  now: () => Date;
  /** A fresh host secret (shared/signing.ts newHostSecret in production). */
  newSecret: () => string;
  /** A random suffix for generated host and rollout ids: lowercase letters and digits. */
  newId: () => string;
}
