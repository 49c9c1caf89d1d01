import type { FleetInstance, HostProvisioner } from './ports.ts';

/** Tags a host's inbox with the instance that may read it (SnsStatePublisher.bindInbox). */
export interface InboxBinder {
  bindInbox(hostId: string, instance: Pick<FleetInstance, 'instanceId'>): Promise<void>;
}

/**
 * A provisioner whose bind also hands the host's inbox to the new instance: binding is the one moment the
 * instance is known (right after the launch), and everything only it may reach is tagged with it then — its
 * secret by the provisioner, its inbox here — so a retried wave, which binds a live instance again, repairs both.
 */
export function bindingInboxes(provisioner: HostProvisioner, inboxes: InboxBinder): HostProvisioner {
  return {
    prepare: (host) => provisioner.prepare(host),
    bind: async (hostId, instance) => {
      await provisioner.bind(hostId, instance);
      await inboxes.bindInbox(hostId, instance);
    },
    revoke: (hostId) => provisioner.revoke(hostId),
  };
}
