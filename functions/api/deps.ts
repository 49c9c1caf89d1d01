import type { UploadGrantIssuer } from '../../shared/cdn-policy.ts';
import type { UsageReader } from '../../shared/cost/usage.ts';
import type { DocumentStore, ReconcileStarter } from '../../shared/groups/ports.ts';
import type { EventStore, HostStore, SecretCipher } from '../../shared/ports.ts';
import type { PublishedDocuments } from './published-documents.ts';

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
  /** Signs each registered host a CloudFront policy for its own prefix; absent: the CDN path is not configured. */
  uploadGrants?: UploadGrantIssuer;
  /** GET /openapi.json and GET /schemas/snapshot.json: files beside the bundle on Lambda, generated locally. */
  published: PublishedDocuments;
  /** The hourly usage counters GET /cost reads (shared/cost/usage.ts); absent: it prices no counts. */
  usage?: UsageReader;
}
