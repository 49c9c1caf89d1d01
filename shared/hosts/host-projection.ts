import type { Projection, Stored } from '../command/runner.ts';
import type { HostRecord, HostStore } from '../ports.ts';
import type { HostStreamState } from './host-decider.ts';

/**
 * The host projection in the hosts table. A new host's record is created with its encrypted secret, which the
 * stream never holds (without one, a missing record stays missing); after that every save is behind the
 * store's version guard, which keeps the newest.
 */
export function hostProjection(
  hosts: HostStore,
  hostId: string,
  options: { secretCiphertext?: string } = {},
): Projection<HostStreamState> {
  return {
    async load(): Promise<Stored<HostStreamState> | undefined> {
      const record = await hosts.get(hostId);
      return record ? { state: record, revision: record.version } : undefined;
    },
    async save(state: HostStreamState, stored: Stored<HostStreamState> | undefined): Promise<void> {
      if (!state) return;
      if (stored?.state) {
        await hosts.save(state);
        return;
      }
      // A registration cut short (its event, no projection): only the registration holds a secret to create
      // the record with, and completes it (ensureHostRegistered). Anyone else leaves it to that; throwing here
      // would fail a command that decided nothing, e.g. the ingest quarantining such a host's snapshot.
      if (options.secretCiphertext === undefined) return;
      await hosts.create({ ...state, secretCiphertext: options.secretCiphertext } satisfies HostRecord);
    },
  };
}
