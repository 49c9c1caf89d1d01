import { afterAll, beforeAll } from 'vitest';
import { dynamoClient, type RunningDynalite, startDynalite } from '../../shared/adapters/dynalite.ts';
import { DynamoDocumentStore } from '../../shared/adapters/dynamo-document-store.ts';
import { DynamoEventStore } from '../../shared/adapters/dynamo-event-store.ts';
import { DynamoHostStore } from '../../shared/adapters/dynamo-host-store.ts';
import type { HostProvisioner } from '../../shared/groups/host-provisioning.ts';
import { ensureHostRegistered } from '../../shared/host-registration.ts';
import { retireHost } from '../../shared/hosts/host-commands.ts';
import { FakeCipher } from './memory-stores.ts';

/** The DynamoDB stores a reconcile test runs against, on a dynalite of its own. */
export interface DynaliteStores {
  client: ReturnType<typeof dynamoClient>;
  events: DynamoEventStore;
  hosts: DynamoHostStore;
  documents: DynamoDocumentStore;
}

/**
 * Starts dynalite before the file's tests and stops it after them. The stores are filled in by a beforeAll
 * registered here, so a beforeAll the caller registers afterwards already sees them.
 */
export function useDynaliteStores(): DynaliteStores {
  const stores = {} as DynaliteStores;
  let dynamo: RunningDynalite | undefined;
  beforeAll(async () => {
    dynamo = await startDynalite();
    const client = dynamoClient(dynamo.endpoint);
    Object.assign(stores, {
      client,
      events: new DynamoEventStore({ client, tableName: dynamo.tables.events }),
      hosts: new DynamoHostStore({ client, tableName: dynamo.tables.hosts }),
      documents: new DynamoDocumentStore({ client, tableName: dynamo.tables.documents as string }),
    });
  });
  afterAll(async () => {
    stores.client?.destroy();
    await dynamo?.stop();
  });
  return stores;
}

/** Registers a host as the api does (its stream and its projection), with a secret nobody reads here. */
export function registeringProvisioner(
  stores: Pick<DynaliteStores, 'events' | 'hosts'>,
  now: () => Date,
): HostProvisioner {
  const { events, hosts } = stores;
  return {
    async prepare(host) {
      await ensureHostRegistered({ events, hosts, cipher: new FakeCipher() }, host, () => 'secret', now());
      return `/fleetfold/test/${host.hostId}`;
    },
    bind: async () => {},
    revoke: (hostId) => retireHost({ events, hosts, now }, hostId, 'secret revoked').then(() => {}),
  };
}
