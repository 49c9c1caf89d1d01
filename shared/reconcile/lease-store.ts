import type { DocumentStore } from '../groups/ports.ts';
import { retryOnConflict } from '../retry.ts';
import { type Lease, NO_LEASE } from './lease.ts';

/**
 * The group's lease as a versioned document ('lease', the group's name): coordination between runs, not a
 * record of the group, so it is not an event. `decide` is pure; a lost race decides again on what won.
 */
export async function updateLease<R extends object>(
  documents: DocumentStore,
  group: string,
  now: Date,
  decide: (lease: Lease) => R,
): Promise<R> {
  return retryOnConflict(async () => {
    const stored = await documents.get<Lease>('lease', group);
    const result = decide(stored?.body ?? NO_LEASE);
    // A decision that changes the lease says so with a `lease` member (claim, renew, release do).
    const lease = 'lease' in result ? (result.lease as Lease | undefined) : undefined;
    if (lease && lease !== stored?.body)
      await documents.put('lease', group, lease, stored?.version ?? 0, now);
    return result;
  });
}
